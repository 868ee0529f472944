/* A stand-in for https://widget.intercom.io/widget/<app_id>, served from 127.0.0.1.
 *
 * It keeps the contract of Intercom's real widget that messenger.js depends on:
 *  - when it loads, it boots from window.intercomSettings if that names an app;
 *  - it takes the loader stub's queue (window.Intercom.q) and drains it itself,
 *    calling its own handler, not window.Intercom;
 *  - it replaces window.Intercom with its own function.
 * Every call it receives is recorded in window.__widgetCalls, as JSON (`data`) and as a
 * for...in walk (`keys`), so a test sees exactly what would have reached Intercom
 * whichever way the widget reads it. Set window.__widgetLate (milliseconds) before it
 * loads to make it initialise that much after its script's load event, as a widget
 * that fetches the rest of its code first does. */
(function () {
  "use strict";
  var w = window;
  var calls = (w.__widgetCalls = w.__widgetCalls || []);
  w.__widgetLoads = (w.__widgetLoads || 0) + 1;

  function snapshot(value) {
    try {
      return value === undefined ? null : JSON.parse(JSON.stringify(value));
    } catch (error) {
      return { unserialisable: String(error) };
    }
  }

  // What a widget that walks the object (for...in, as Object.assign or a serialiser of
  // its own would) sees: inherited enumerable keys, an array's or function's extra
  // keys, a toJSON method's own key. Every value read once.
  function walk(value, depth) {
    if (value === null || (typeof value !== "object" && typeof value !== "function")) {
      return value === undefined ? null : value;
    }
    if (depth > 3) {
      return "(deeper)";
    }
    var out = {};
    try {
      for (var key in value) {
        out[key] = walk(value[key], depth + 1);
      }
    } catch (error) {
      out["(unreadable)"] = String(error);
    }
    return out;
  }

  var booted = false;

  function handle(args, how) {
    // Dispatched by name, as a lookup in a table of methods would: coerced to a string.
    var method;
    try {
      method = String(args[0]);
    } catch (error) {
      method = "(unreadable: " + error + ")";
    }
    calls.push({
      method: method,
      data: snapshot(args[1]),
      keys: walk(args[1], 0),
      how: how,
      at: Date.now(),
    });
    if (method === "boot") {
      booted = true;
    } else if (method === "shutdown") {
      booted = false;
    }
  }

  function Intercom() {
    handle(Array.prototype.slice.call(arguments), "call");
  }
  Object.defineProperty(Intercom, "booted", {
    get: function () {
      return booted;
    },
  });

  function initialise() {
    var settings = w.intercomSettings;
    w.__widgetSettingsAtLoad = snapshot(settings);
    if (settings && settings.app_id) {
      handle(["boot", settings], "intercomSettings");
    }

    var loader = w.Intercom;
    var queue = loader && Array.isArray(loader.q) ? loader.q.slice() : [];
    w.Intercom = Intercom;
    for (var i = 0; i < queue.length; i += 1) {
      handle(Array.prototype.slice.call(queue[i]), "queue");
    }
    w.__widgetInitialised = (w.__widgetInitialised || 0) + 1;
  }

  if (typeof w.__widgetLate === "number") {
    w.setTimeout(initialise, w.__widgetLate);
  } else {
    initialise();
  }
})();
