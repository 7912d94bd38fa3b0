// wordcount: counts the words, lines and characters of param `text`.
// {"text": "a b\nc"} -> {"words": 3, "lines": 2, "chars": 5}; without a
// string `text`, the application error {"error": "parameter 'text' (a string) is required"}.
exports.main = async function (params) {
  const text = params.text;
  if (typeof text !== "string") {
    return { error: "parameter 'text' (a string) is required" };
  }
  const words = text.split(/\s+/).filter((word) => word.length > 0).length;
  const lines = text === "" ? 0 : text.replace(/\n$/, "").split("\n").length;
  return { words, lines, chars: [...text].length };
};
