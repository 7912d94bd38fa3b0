// hello: greets `name` (default "World"), like OpenWhisk's hello.js.
// {"name": "Ada"} -> {"payload": "Hello, Ada!"}, and one log line.
function main(params) {
  const name = params.name || "World";
  console.log(`hello: greeting ${name}`);
  return { payload: `Hello, ${name}!` };
}
