// The globals a Clemmys JavaScript action sees beyond QuickJS's own
// (`JSON`, `Promise`, `Date`, `Math`, typed arrays, ...), and the driver
// that calls the action's main function. Evaluated before the action's
// source, once per activation or once into a snapshot (main.rs). Host
// functions it uses (given by main.rs):
//   __clemmys_log(line)  writes one line to stderr (the activation's logs)
//   __clemmys_now()      milliseconds since the epoch (WASI's clock)
//   __clemmys_random()   a double in [0, 1), seeded for each activation
// The prelude may be evaluated at build time (a Wizer snapshot): nothing
// here may read the clock or randomness outside of a function call.
(function () {
  "use strict";
  const host = {
    log: globalThis.__clemmys_log,
    now: globalThis.__clemmys_now,
    random: globalThis.__clemmys_random,
  };
  delete globalThis.__clemmys_log;
  delete globalThis.__clemmys_now;
  delete globalThis.__clemmys_random;
  // The driver's own JSON: an action may replace the global one.
  const stringify = JSON.stringify;

  // QuickJS seeds its own Math.random when the context is made, which a
  // snapshot would freeze into every activation: use the host's generator,
  // seeded per activation, instead.
  Object.defineProperty(Math, "random", {
    value: function random() { return host.random(); },
    writable: true, enumerable: false, configurable: true,
  });

  // console: one log line per call, arguments joined by spaces as Node does
  // (objects as JSON, which is what Node's util.inspect is closest to here).
  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack.trimEnd()}` : String(value);
    if (typeof value === "function") return `[Function: ${value.name || "(anonymous)"}]`;
    if (typeof value === "object" && value !== null) {
      try {
        return stringify(value);
      } catch (_) {
        return String(value);
      }
    }
    return String(value);
  }
  function write(...values) {
    host.log(values.map(show).join(" "));
  }
  globalThis.console = {
    log: write, info: write, debug: write, warn: write, error: write, trace: write,
  };

  // Node's built-in modules are not here: say so, naming the module.
  const NODE_BUILTINS = new Set([
    "assert", "async_hooks", "buffer", "child_process", "cluster", "console",
    "constants", "crypto", "dgram", "diagnostics_channel", "dns", "domain",
    "events", "fs", "fs/promises", "http", "http2", "https", "inspector",
    "module", "net", "os", "path", "perf_hooks", "process", "punycode",
    "querystring", "readline", "repl", "stream", "string_decoder", "timers",
    "tls", "trace_events", "tty", "url", "util", "v8", "vm", "wasi",
    "worker_threads", "zlib",
  ]);
  function require(name) {
    const text = String(name);
    const bare = text.startsWith("node:") ? text.slice(5) : text;
    let error;
    if (NODE_BUILTINS.has(bare)) {
      error = new Error(
        `Cannot find module '${text}': Node's built-in module '${bare}' is not available ` +
        "in Clemmys JavaScript actions (QuickJS in a wasm sandbox, no Node APIs)");
    } else {
      error = new Error(
        `Cannot find module '${text}': Clemmys JavaScript actions are single files ` +
        "and cannot load modules");
    }
    error.code = "MODULE_NOT_FOUND";
    throw error;
  }

  // Timers: kept here, run by the host's event loop (main.rs) once no
  // promise job is left; the sandbox ends the activation at its deadline.
  const timers = new Map();
  let nextTimerId = 1;
  function addTimer(callback, delay, args, repeat) {
    if (typeof callback !== "function") throw new TypeError("The callback must be a function");
    const id = nextTimerId++;
    const ms = Math.max(0, Number(delay) || 0);
    timers.set(id, { at: host.now() + ms, ms, callback, args, repeat });
    return id;
  }
  globalThis.setTimeout = (callback, delay, ...args) => addTimer(callback, delay, args, false);
  globalThis.setInterval = (callback, delay, ...args) => addTimer(callback, delay, args, true);
  globalThis.setImmediate = (callback, ...args) => addTimer(callback, 0, args, false);
  globalThis.clearTimeout = (id) => { timers.delete(id); };
  globalThis.clearInterval = globalThis.clearTimeout;
  globalThis.clearImmediate = globalThis.clearTimeout;
  if (typeof globalThis.queueMicrotask !== "function") {
    globalThis.queueMicrotask = (callback) => { Promise.resolve().then(() => callback()); };
  }

  // UTF-8 TextEncoder / TextDecoder.
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(input = "") {
      const text = String(input);
      const bytes = [];
      for (let i = 0; i < text.length; i++) {
        let code = text.codePointAt(i);
        if (code > 0xffff) i++;
        else if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd; // lone surrogate
        if (code < 0x80) bytes.push(code);
        else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63));
        else if (code < 0x10000) {
          bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
        } else {
          bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63),
            0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
        }
      }
      return new Uint8Array(bytes);
    }
  }
  class TextDecoder {
    constructor(label = "utf-8") {
      const name = String(label).toLowerCase();
      if (name !== "utf-8" && name !== "utf8") {
        throw new RangeError(`The encoding '${label}' is not supported (only utf-8)`);
      }
    }
    get encoding() { return "utf-8"; }
    decode(input) {
      if (input === undefined) return "";
      const bytes = input instanceof Uint8Array ? input
        : ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength)
          : new Uint8Array(input);
      let out = "";
      let i = 0;
      while (i < bytes.length) {
        const b = bytes[i];
        let code = 0xfffd;
        let len = 1;
        if (b < 0x80) code = b;
        else if (b >= 0xc2 && b < 0xe0) len = 2;
        else if (b >= 0xe0 && b < 0xf0) len = 3;
        else if (b >= 0xf0 && b < 0xf5) len = 4;
        if (len > 1) {
          if (i + len > bytes.length) { len = 1; }
          else {
            code = b & (0xff >> (len + 1));
            for (let k = 1; k < len; k++) {
              const c = bytes[i + k];
              if ((c & 0xc0) !== 0x80) { code = 0xfffd; len = k; break; }
              code = (code << 6) | (c & 63);
            }
            if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) code = 0xfffd;
          }
        }
        out += String.fromCodePoint(code);
        i += len;
      }
      return out;
    }
  }
  globalThis.TextEncoder = TextEncoder;
  globalThis.TextDecoder = TextDecoder;

  // atob / btoa on Latin-1 strings, as in browsers and Node.
  const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  globalThis.btoa = (input) => {
    const text = String(input);
    let out = "";
    for (let i = 0; i < text.length; i += 3) {
      const codes = [text.charCodeAt(i), text.charCodeAt(i + 1), text.charCodeAt(i + 2)];
      for (const code of codes) {
        if (code > 0xff) throw new Error("btoa: the string has characters outside Latin-1");
      }
      const [a, b, c] = codes;
      out += ALPHABET[a >> 2] + ALPHABET[((a & 3) << 4) | ((b || 0) >> 4)];
      out += Number.isNaN(b) ? "=" : ALPHABET[((b & 15) << 2) | ((c || 0) >> 6)];
      out += Number.isNaN(c) ? "=" : ALPHABET[c & 63];
    }
    return out;
  };
  globalThis.atob = (input) => {
    const text = String(input).replace(/[\t\n\f\r ]/g, "").replace(/={1,2}$/, "");
    if (text.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(text)) {
      throw new Error("atob: the string is not valid base64");
    }
    let out = "";
    let bits = 0;
    let count = 0;
    for (const char of text) {
      bits = (bits << 6) | ALPHABET.indexOf(char);
      count += 6;
      if (count >= 8) {
        count -= 8;
        out += String.fromCharCode((bits >> count) & 0xff);
      }
    }
    return out;
  };

  // What an error becomes in `{"error": ...}`: an Error as its text (its
  // stack stays in the logs), anything else as the value itself.
  function errorValue(error) {
    if (error instanceof Error) return String(error);
    if (error === undefined || error === null) return {};
    return error;
  }

  // QuickJS's own out-of-memory error: the action hit its memory limit,
  // which OpenWhisk reports as the developer's error, not the action's.
  const OUT_OF_MEMORY = { developerError: "The action exhausted its memory and was aborted." };
  function isOutOfMemory(error) {
    return error instanceof InternalError && error.message === "out of memory";
  }

  let outcome;
  function settle(value) {
    if (outcome !== undefined) return;
    outcome = value;
  }
  function resultOf(value) {
    if (value === undefined || value === null) return { result: {} };
    if (typeof value !== "object") {
      return { developerError: "The action did not return a dictionary." };
    }
    return { result: value };
  }

  // Called by main.rs: `factory` is the action's source wrapped in a
  // CommonJS-style function that returns its own `mainName` binding, if any.
  globalThis.__clemmys_start = function (factory, mainName, params, env) {
    globalThis.process = {
      env: Object.assign({}, env),
      argv: ["clemmys-js"],
      platform: "wasi",
      version: "",
      versions: {},
      exit() { throw new Error("process.exit is not available in Clemmys JavaScript actions"); },
      nextTick(callback, ...args) { Promise.resolve().then(() => callback(...args)); },
      hrtime: Object.assign(() => { throw new Error("process.hrtime is not available"); }, {
        bigint: () => BigInt(Math.round(host.now() * 1e6)),
      }),
    };
    const module = { exports: {} };
    let main;
    try {
      const local = factory.call(module.exports, module.exports, require, module, "action.js", "/");
      const exported = module.exports;
      if (typeof local === "function") main = local;
      else if (exported !== null && typeof exported === "object" && typeof exported[mainName] === "function") {
        main = exported[mainName];
      } else if (typeof exported === "function") {
        main = typeof exported[mainName] === "function" ? exported[mainName] : exported;
      }
    } catch (error) {
      console.error(show(error));
      settle({ developerError: `Initialization has failed due to: ${String(error)}` });
      return;
    }
    if (typeof main !== "function") {
      settle({ developerError: `Initialization has failed due to: Action entrypoint '${mainName}' is not a function.` });
      return;
    }
    let value;
    try {
      value = main(params);
    } catch (error) {
      if (isOutOfMemory(error)) {
        settle(OUT_OF_MEMORY);
        return;
      }
      console.error(show(error));
      settle({ result: { error: `An error has occurred: ${String(errorValue(error))}` } });
      return;
    }
    if (value !== null && typeof value === "object" && typeof value.then === "function") {
      Promise.resolve(value).then(
        (resolved) => settle(resultOf(resolved)),
        (error) => {
          if (isOutOfMemory(error)) {
            settle(OUT_OF_MEMORY);
            return;
          }
          if (error instanceof Error) console.error(show(error));
          settle({ result: { error: errorValue(error) } });
        });
    } else {
      settle(resultOf(value));
    }
  };

  // Called by main.rs's event loop.
  globalThis.__clemmys_loop = {
    // The outcome as one JSON line, or undefined while the action runs.
    outcome() {
      if (outcome === undefined) return undefined;
      try {
        return stringify(outcome);
      } catch (error) {
        return stringify({ developerError: `The action's result is not JSON: ${String(error)}` });
      }
    },
    // Milliseconds until the next timer is due, or -1 if none is set.
    nextDelay() {
      let earliest = Infinity;
      for (const timer of timers.values()) earliest = Math.min(earliest, timer.at);
      return earliest === Infinity ? -1 : Math.max(0, earliest - host.now());
    },
    // Runs the earliest due timer, if any.
    runDue() {
      let due;
      for (const [id, timer] of timers) {
        if (timer.at <= host.now() && (due === undefined || timer.at < due[1].at)) due = [id, timer];
      }
      if (due === undefined) return;
      const [id, timer] = due;
      if (timer.repeat) timer.at = host.now() + timer.ms;
      else timers.delete(id);
      timer.callback(...timer.args);
    },
  };
})();
