/* A local stand-in for Intercom's widget (https://widget.intercom.io/widget/<app_id>), served by
 * the demo because the real one cannot be reached offline.
 *
 * It keeps the contract of the real widget that messenger.js relies on:
 *  - when it loads, it boots from window.intercomSettings if that names an app;
 *  - it takes the loader stub's queue (window.Intercom.q) and drains it itself,
 *    calling its own handler, not window.Intercom;
 *  - it replaces window.Intercom with its own function.
 * Instead of a Messenger it shows, on the page, what Intercom would receive: every call of
 * the current session (a shutdown clears the panel) with its data and the claims of the Messenger JWT, decoded here from the token's base64url
 * payload. It cannot check the signature: that takes the Messenger secret, which only Intercom
 * and the identity service hold. Each call is also kept in window.__widgetCalls and announced
 * as an "intercom-stand-in" event on window. Everything is written with textContent: the
 * claims hold user data and must never be parsed as HTML. */
(function () {
  "use strict";
  var w = window;
  var d = document;
  var calls = (w.__widgetCalls = w.__widgetCalls || []);
  var panel = null;
  var shownJwt = null;
  var booted = false;

  function snapshot(value) {
    try {
      return value === undefined ? null : JSON.parse(JSON.stringify(value));
    } catch (error) {
      return { unserialisable: String(error) };
    }
  }

  function decodeClaims(jwt) {
    var part = String(jwt).split(".")[1];
    if (!part) {
      throw new Error("not a JWT");
    }
    var base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = w.atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      bytes[i] = binary.charCodeAt(i);
    }
    // The payload is UTF-8 JSON: names like "Zoë" need a real UTF-8 decode, not atob alone.
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  }

  function element(tag, className, text) {
    var node = d.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  // A JWT is long and opaque: shown shortened (its claims are decoded below it); the
  // exact value stays in the element's data-json.
  function readable(key, value) {
    if (key === "intercom_user_jwt" && typeof value === "string" && value.length > 40) {
      return value.slice(0, 20) + "…" + value.slice(-8) + " (" + value.length + " characters)";
    }
    return value;
  }

  function block(box, heading, role, value) {
    box.appendChild(element("h4", null, heading));
    var pre = element("pre", null, JSON.stringify(value, readable, 2));
    pre.setAttribute("data-role", role);
    pre.setAttribute("data-json", JSON.stringify(value));
    box.appendChild(pre);
  }

  function mount() {
    if (panel) {
      return panel;
    }
    panel = d.getElementById("intercom-stand-in");
    if (!panel) {
      panel = element("aside");
      panel.id = "intercom-stand-in";
      d.body.appendChild(panel);
    }
    panel.appendChild(element("h2", null, "Intercom (local stand-in)"));
    panel.appendChild(
      element(
        "p",
        "sub",
        "What Intercom's widget would receive from this page. The real widget loads instead " +
          "when the demo runs with your own workspace (INTERCOM_APP_ID, INTERCOM_MESSENGER_SECRET)."
      )
    );
    return panel;
  }

  function describeJwt(box, data) {
    var jwt = data && data.intercom_user_jwt;
    if (typeof jwt !== "string") {
      box.appendChild(
        element("p", "note", "No intercom_user_jwt: Intercom would treat this as an anonymous visitor.")
      );
      return;
    }
    if (jwt === shownJwt) {
      box.appendChild(element("p", "note", "intercom_user_jwt: the same token as shown above."));
      return;
    }
    var claims;
    try {
      claims = decodeClaims(jwt);
    } catch (error) {
      box.appendChild(element("p", "note", "intercom_user_jwt is not a readable JWT: " + error));
      return;
    }
    shownJwt = jwt;
    block(box, "token claims (the JWT's payload, decoded here; Intercom checks the signature)", "claims", claims);
    if (typeof claims.exp === "number") {
      box.appendChild(
        element("p", "note", "The token expires at " + new Date(claims.exp * 1000).toLocaleString() + ".")
      );
    }
  }

  function render(call, index) {
    var box = element("article", "standin-call");
    box.setAttribute("data-method", String(call.method));
    box.setAttribute("data-index", String(index));
    var source = call.how === "queue" ? " (queued before the widget loaded)" : "";
    box.appendChild(element("h3", null, "Intercom('" + call.method + "')" + source));
    if (call.data !== null) {
      block(box, call.method === "boot" ? "boot settings" : "data", "data", call.data);
    }
    if (call.method === "boot" || call.method === "update") {
      describeJwt(box, call.data);
    } else if (call.method === "shutdown") {
      forget();
      box.appendChild(element("p", "note", "Session ended: the Messenger forgets the user."));
    }
    var target = mount();
    target.appendChild(box);
    target.scrollTop = target.scrollHeight; // the newest call in view, inside the panel
  }

  // A shutdown ends the Messenger session: like the Messenger, the panel drops the
  // old calls, their token and its claims, so nothing of the last user stays on screen.
  function forget() {
    shownJwt = null;
    var old = mount().querySelectorAll(".standin-call");
    for (var i = 0; i < old.length; i += 1) {
      old[i].parentNode.removeChild(old[i]);
    }
  }

  function handle(args, how) {
    var call = { method: args[0], data: snapshot(args[1]), how: how, at: Date.now() };
    var index = calls.push(call) - 1;
    if (call.method === "boot") {
      booted = true;
    } else if (call.method === "shutdown") {
      booted = false;
    }
    if (d.body) {
      render(call, index);
    } else {
      d.addEventListener("DOMContentLoaded", function () {
        render(call, index);
      });
    }
    w.dispatchEvent(new CustomEvent("intercom-stand-in", { detail: call }));
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
  if (settings && settings.app_id) {
    handle(["boot", settings], "intercomSettings");
  }

  var loader = w.Intercom;
  var queue = loader && Array.isArray(loader.q) ? loader.q.slice() : [];
  w.Intercom = Intercom;
  for (var i = 0; i < queue.length; i += 1) {
    handle(Array.prototype.slice.call(queue[i]), "queue");
  }
  if (d.body) {
    mount(); // visible even before the first call
  }
})();
