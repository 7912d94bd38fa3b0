// /whisk.system/utils/hosturl: the URL that runs action `path` (`name` or
// `pkg/name`) of the caller's namespace: its web URL with `web: true`
// (and `ext`, `.json` by default), else the URL to POST to with a key
// (a trigger's with `trigger: true`).
function main(params) {
  const host = process.env.__OW_API_HOST;
  const namespace = process.env.__OW_NAMESPACE;
  const web = params.web === true;
  const extensions = [".json", ".text", ".html", ".http", ".svg"];
  const path = typeof params.path === "string" ? params.path : "";
  if (web && params.trigger) {
    return { error: "triggers are not allowed for web actions." };
  }
  if (web && params.ext && !extensions.includes(params.ext)) {
    return { error: `extension for web action must be one of ${JSON.stringify(extensions)}.` };
  }
  if (!web && params.trigger && path.includes("/")) {
    return { error: "triggers are not allowed in packages." };
  }
  const collection = params.trigger === true ? "triggers" : "actions";
  const base = web
    ? `${host}/api/v1/web/${namespace}`
    : `${host}/api/v1/namespaces/${namespace}/${collection}`;
  if (path === "") {
    return { url: base };
  }
  const qualified = web && !path.includes("/") ? `default/${path}` : path;
  const ext = web ? params.ext || ".json" : "";
  return { url: `${base}/${qualified}${ext}` };
}
