/* A stand-in for https://widget.intercom.io/widget/<app_id>, served from 127.0.0.1.
 *
 * It keeps the contract of Intercom's real widget that messenger.js depends on:
 *  - when it loads, it boots from window.intercomSettings if that names an app;
 *  - it takes the loader stub's queue (window.Intercom.q) and drains it itself,
 *    calling its own handler, not window.Intercom;
 *  - it replaces window.Intercom with its own function.
 * Every call it receives is recorded, as JSON, in window.__widgetCalls, so a test
 * sees exactly what would have reached Intercom. */
(function () {
  "use strict";
  var w = window;
  var calls = (w.__widgetCalls = w.__widgetCalls || []);
  w.__widgetLoads = (w.__widgetLoads || 0) + 1;

  function snapshot(value) {
    return value === undefined ? null : JSON.parse(JSON.stringify(value));
  }

  var booted = false;

  function handle(args, how) {
    var method = args[0];
    calls.push({ method: method, data: snapshot(args[1]), how: how, at: Date.now() });
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
})();
