/*! identity_service messenger.js: boots the Intercom Messenger with a server-signed JWT,
 * refreshes it before it expires, and keeps protected keys out of every client-side
 * Intercom call. No dependencies, no build step. Works as a classic script (global
 * IdentityServiceMessenger) and, as messenger.mjs, as an ES module.
 *
 *   var messenger = IdentityServiceMessenger.startMessenger({
 *     tokenUrl: "https://id.example.com/v1/messenger/token",  // POST, JSON body {workspace}
 *     workspace: "eu",                  // optional; the service's default otherwise
 *     getAccessToken: () => idp.token(), // optional: Bearer; else the session cookie is sent
 *     credentials: "include",           // optional fetch credentials override
 *     appId: "abc123", apiBase: "...",  // needed only for onFailure: "anonymous"
 *     protectedKeys: ["plan"],          // the workspace's signed attributes (config.json)
 *     settings: {alignment: "left"},    // any other, non-protected Messenger settings
 *     widgetUrl: "https://widget.intercom.io/widget/{app_id}",
 *     onFailure: "none",                // or "anonymous": never an unverified user
 *     retry: {attempts: 5, baseDelayMs: 1000, maxDelayMs: 30000},
 *     refreshRatio: 0.8,                // refresh at 80 % of the token's lifetime
 *     nonce: "...",                     // CSP nonce for the widget <script> (default:
 *                                       // this script's own nonce; set it when imported)
 *     token: {...},                     // a token rendered into the page (skips 1st fetch)
 *     userKey: "u-42",                  // names the logged-in user: a tab opened later
 *                                       // reuses another tab's fresh token for the same key
 *     shareTabs: true,                  // false: this tab fetches and refreshes alone
 *     onError: fn(error), onStateChange: fn(state)
 *   });
 *   messenger.ready      // Promise: "identified" | "anonymous" | "failed" | "stopped"
 *   messenger.update({color: "red"}); messenger.refresh(); messenger.logout();
 *   IdentityServiceMessenger.current(), IdentityServiceMessenger.logout()
 *
 * Do not also paste Intercom's own loader snippet: this script loads the widget. */
(function (root) {
  "use strict";

  // Loaded twice (say, the classic script and the module): one guard per window only,
  // because two guards would wrap each other and warn twice for every key.
  if (root.IdentityServiceMessenger) {
    return;
  }

  var VERSION = "1";
  var PREFIX = "[identity-service messenger] ";
  // Never set in clear whatever the workspace signs: identity, and the legacy HMAC.
  var ALWAYS_PROTECTED = ["user_id", "email", "user_hash"];
  // Set by us from the token endpoint's answer; host settings may not override them.
  var OWNED_KEYS = ["app_id", "api_base", "intercom_user_jwt"];
  var DEFAULT_WIDGET_URL = "https://widget.intercom.io/widget/{app_id}";
  var JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
  // document.currentScript only exists while this file is first evaluated: remember
  // its CSP nonce now so the widget's <script> can carry it later.
  var LOADER_NONCE = (function () {
    var current = typeof document !== "undefined" && document.currentScript;
    return (current && (current.nonce || current.getAttribute("nonce"))) || "";
  })();

  function warn(message) {
    if (root.console && root.console.warn) {
      root.console.warn(PREFIX + message);
    }
  }

  function report(message, error) {
    if (root.console && root.console.error) {
      root.console.error(PREFIX + message, error === undefined ? "" : error);
    }
  }

  // Any non-array object counts: a class instance or an object from another frame
  // carries keys to Intercom just the same, so it must not slip past the guard.
  function isRecord(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  // Objects and functions: anything that can carry keys (arrays and functions included).
  function isObject(value) {
    return value !== null && (typeof value === "object" || typeof value === "function");
  }

  // ---------------------------------------------------------------------------------
  // The guard: every call into Intercom and every window.intercomSettings passes here.
  // Page objects may be getters, Proxies or objects that change between reads, so each
  // one is read exactly once into a plain snapshot, and only the snapshot is checked
  // and passed on: checking one read and passing on another lets anything through.
  // ---------------------------------------------------------------------------------

  var protectedKeys = Object.create(null);
  ALWAYS_PROTECTED.forEach(function (key) {
    protectedKeys[key] = true;
  });

  // Intercom replaces these characters in an attribute name with "_", so "user.id"
  // would reach Intercom as "user_id": such a key is compared in Intercom's spelling.
  var RENAMED = /[.$~`!@#%^&*'{}[\]|\\"\u0000]/g;

  function isProtected(key) {
    return typeof key === "string" && (protectedKeys[key] === true || protectedKeys[key.replace(RENAMED, "_")] === true);
  }

  var guardInstalled = false;
  var innerIntercom; // what page code or the widget assigned to window.Intercom
  var guardedIntercom; // what window.Intercom returns: a Proxy of innerIntercom
  var settingsTarget; // our copy of window.intercomSettings, protected keys removed
  var settingsProxy; // what window.intercomSettings returns
  // false when a page's top-level `var` makes the window property impossible to
  // redefine: its value is then re-checked before each of our own uses instead.
  var durable = { Intercom: true, intercomSettings: true };
  // Set by the running messenger: the current JWT (null when not identified), a hook
  // told when anything shuts the Messenger down, one told when the widget takes over
  // window.Intercom, and whether app_id is held out of window.intercomSettings (while
  // our boot waits in the queue, an app_id there would make the widget boot twice).
  var hooks = { jwt: null, onShutdown: null, onWidget: null, holdAppId: false };

  function protect(keys) {
    if (!Array.isArray(keys)) {
      return;
    }
    keys.forEach(function (key) {
      if (typeof key === "string" && key) {
        protectedKeys[key] = true;
      }
    });
  }

  function removedWarning(key, where) {
    warn(
      'removed protected key "' + key + '" from ' + where +
        ": it is signed in the Messenger token and must never be set in the browser"
    );
  }

  // A key that is never passed on: a protected key, toJSON (a serialiser would call it
  // and send whatever it returns instead of the cleaned keys) or __proto__. Warns when
  // it drops.
  function dropped(key, where) {
    if (isProtected(key)) {
      removedWarning(key, where);
      return true;
    }
    if (key === "toJSON") {
      warn('removed "toJSON" from ' + where + ": it would replace the cleaned keys when sent");
      return true;
    }
    if (key === "__proto__") {
      // An own "__proto__" key (JSON.parse makes one): assigned to a copy, it would set
      // the copy's prototype, whose keys reach Intercom unchecked as inherited keys.
      warn('removed "__proto__" from ' + where + ": it would set a prototype whose keys are not checked");
      return true;
    }
    if (key === "app_id" && hooks.holdAppId && where === "window.intercomSettings") {
      // Not a warning: messenger.js writes app_id itself once the widget has booted.
      return true;
    }
    return false;
  }

  // A plain copy of `data` without dropped keys, one warning per removed key. Every
  // key list and value is read once, and errors (a throwing getter or Proxy trap) drop
  // what could not be read instead of escaping. Nested custom_attributes is copied and
  // cleaned the same way, as Intercom integrations nest attributes there; an array or
  // function there (which could carry keys past a JSON check) is dropped.
  function strip(data, where) {
    if (!isObject(data)) {
      return data;
    }
    var clean = {};
    var keys;
    try {
      keys = Object.keys(data);
    } catch (error) {
      report("could not read the keys of " + where + "; nothing of it was passed on", error);
      return clean;
    }
    keys.forEach(function (key) {
      if (dropped(key, where)) {
        return;
      }
      var value;
      try {
        value = data[key];
      } catch (error) {
        warn('removed "' + key + '" from ' + where + ": reading it failed (" + error + ")");
        return;
      }
      if (key === "custom_attributes" && isObject(value)) {
        if (!isRecord(value)) {
          warn('removed "custom_attributes" from ' + where + ": it must be a plain object");
          return;
        }
        value = strip(value, where + " custom_attributes");
      }
      clean[key] = value;
    });
    return clean;
  }

  // boot / update data as passed on: a clean snapshot. Anything else that can carry
  // keys (an array, a function) becomes {}; primitives pass unchanged.
  function cleanData(data, where) {
    if (isObject(data) && (Array.isArray(data) || typeof data === "function")) {
      warn("replaced the " + (Array.isArray(data) ? "array" : "function") + " passed to " + where +
        " with {}: only a plain object holds Messenger settings");
      return {};
    }
    return strip(data, where);
  }

  // The method name, read once: an object (a String, or one with Symbol.toPrimitive)
  // would be compared as an object here and turned into a name by the widget.
  function methodName(value) {
    if (typeof value === "string" || !isObject(value)) {
      return value;
    }
    try {
      return String(value);
    } catch (error) {
      return undefined;
    }
  }

  // The arguments of one Intercom call, made safe: boot/update lose protected keys and,
  // once identified, carry the current JWT (an update without it is refused with 403
  // once Messenger security is enforced). A plain array, read once.
  function guardArgs(args) {
    var list;
    try {
      list = Array.prototype.slice.call(args);
    } catch (error) {
      report("could not read the arguments of an Intercom call; it was dropped", error);
      return [];
    }
    var method = methodName(list[0]);
    if (list.length) {
      list[0] = method;
    }
    if (method === "boot" || method === "update") {
      var data = cleanData(list[1], "Intercom('" + method + "')");
      if (hooks.jwt) {
        data = isRecord(data) ? data : {};
        data.intercom_user_jwt = hooks.jwt;
      }
      if (list.length > 1 || hooks.jwt) {
        list[1] = data;
      }
    }
    return list;
  }

  // Calls queued in the loader stub's `q` before the widget loaded. Cleaned again on
  // every read, because the widget drains the queue itself, without calling through
  // window.Intercom, and entries may have been pushed before the guard existed. Each
  // entry is read once and replaced by its clean copy; returns a clean array to hand
  // out instead when an entry could not be replaced (a frozen queue, an accessor).
  function guardQueue(queue) {
    var copy = [];
    var replaced = true;
    var length;
    try {
      length = queue.length;
    } catch (error) {
      return copy;
    }
    for (var i = 0; i < length; i += 1) {
      var entry;
      try {
        entry = queue[i];
      } catch (error) {
        replaced = false;
        continue;
      }
      var safe = isObject(entry) ? guardArgs(entry) : entry;
      copy.push(safe);
      if (safe !== entry) {
        try {
          replaced = Reflect.defineProperty(queue, i, { value: safe, writable: true, enumerable: true, configurable: true }) && replaced;
        } catch (error) {
          replaced = false;
        }
      }
    }
    return replaced ? queue : copy;
  }

  function guardedCall(args) {
    var safe = guardArgs(args);
    if (safe[0] === "shutdown" && hooks.onShutdown) {
      hooks.onShutdown();
    }
    return safe;
  }

  // An ordinary function's prototype points back at it (prototype.constructor): handed
  // out, it would hand out the unguarded widget. Hidden where a Proxy may hide it (a
  // writable prototype); a class's fixed one belongs to a function no one can call.
  function hidesPrototype(target, property) {
    if (property !== "prototype") {
      return false;
    }
    var own = Reflect.getOwnPropertyDescriptor(target, property);
    return !!own && own.writable === true;
  }

  var intercomHandler = {
    apply: function (target, thisArg, args) {
      return Reflect.apply(target, thisArg, guardedCall(args));
    },
    // `new Intercom(...)` calls the widget too: without this trap it got the arguments as they were.
    construct: function (target, args, newTarget) {
      return Reflect.construct(target, guardedCall(args), newTarget);
    },
    getOwnPropertyDescriptor: function (target, property) {
      var own = Reflect.getOwnPropertyDescriptor(target, property);
      if (own && hidesPrototype(target, property)) {
        own.value = undefined;
      }
      return own;
    },
    get: function (target, property) {
      if (hidesPrototype(target, property)) {
        return undefined;
      }
      var value = Reflect.get(target, property, target);
      if (property === "q" && Array.isArray(value)) {
        var clean = guardQueue(value);
        var own = Reflect.getOwnPropertyDescriptor(target, "q");
        // A Proxy must answer a fixed (non-configurable, read-only) property as it is.
        if (!own || own.configurable || own.writable || !("value" in own)) {
          return clean;
        }
      }
      return value;
    },
  };

  function isLoaderStub(value) {
    try {
      return typeof value === "function" && Array.isArray(value.q);
    } catch (error) {
      return false;
    }
  }

  function adoptIntercom(value) {
    if (value === guardedIntercom && value !== undefined) {
      return;
    }
    innerIntercom = value;
    if (typeof value === "function") {
      if (isLoaderStub(value)) {
        guardQueue(value.q);
      }
      guardedIntercom = new Proxy(value, intercomHandler);
      if (!isLoaderStub(value) && hooks.onWidget) {
        hooks.onWidget(); // the widget (or page code) replaced the loader stub
      }
    } else {
      guardedIntercom = value;
    }
  }

  // window.intercomSettings and its nested custom_attributes are Proxies of clean
  // copies: every later write (assignment or defineProperty, at either level) is
  // checked too, so a protected key cannot be added after the object was adopted.
  function guardedHandler(where) {
    return {
      set: function (target, key, value) {
        if (dropped(key, where)) {
          return true; // dropped, but page code written in strict mode must not throw
        }
        if (key === "custom_attributes" && isObject(value) && !isRecord(value)) {
          warn('removed "custom_attributes" from ' + where + ": it must be a plain object");
          return true;
        }
        target[key] = key === "custom_attributes" ? guardNested(value, where) : value;
        return true;
      },
      defineProperty: function (target, key, descriptor) {
        // `descriptor` is a fresh object the engine made from the page's: safe to read.
        if (dropped(key, where)) {
          return false;
        }
        if (key === "custom_attributes") {
          if ("get" in descriptor || "set" in descriptor) {
            // A getter could hand out anything on every read: refused.
            warn("refused an accessor for custom_attributes on " + where +
              ": protected keys in it could not be removed");
            return false;
          }
          if ("value" in descriptor) {
            var copy = {};
            Object.keys(descriptor).forEach(function (name) {
              copy[name] = descriptor[name];
            });
            copy.value = guardNested(descriptor.value, where);
            descriptor = copy;
          }
        }
        return Reflect.defineProperty(target, key, descriptor);
      },
      // An inherited key reaches any reader that walks the object (for...in).
      setPrototypeOf: function () {
        warn("refused to change the prototype of " + where + ": inherited keys would not be checked");
        return false;
      },
    };
  }

  var settingsHandler = guardedHandler("window.intercomSettings");
  var nestedHandler = guardedHandler("window.intercomSettings custom_attributes");
  var guardedNested = new WeakSet(); // the Proxies guardNested made

  // A custom_attributes value as stored in window.intercomSettings: a Proxy of a clean
  // copy. One of ours assigned again is kept, but cleaned of keys learnt since.
  function guardNested(value, where) {
    if (!isRecord(value)) {
      return value;
    }
    if (guardedNested.has(value)) {
      stripInPlace(value, where + " custom_attributes");
      return value;
    }
    var proxy = new Proxy(strip(value, where + " custom_attributes"), nestedHandler);
    guardedNested.add(proxy);
    return proxy;
  }

  // Removes dropped keys in place, nested custom_attributes included: keys learnt
  // later apply to what is already stored, and references page code holds stay valid.
  // Only ever called on our own copies, or (degraded) on the page's own object, where
  // a frozen or non-configurable key is reported instead of thrown.
  function stripInPlace(record, where) {
    var keys;
    try {
      keys = Object.keys(record);
    } catch (error) {
      report("could not read the keys of " + where, error);
      return;
    }
    keys.forEach(function (key) {
      try {
        if (dropped(key, where)) {
          if (!Reflect.deleteProperty(record, key)) {
            report('could not remove "' + key + '" from ' + where + " (frozen or not configurable)");
          }
        } else if (key === "custom_attributes" && isRecord(record[key])) {
          stripInPlace(record[key], where + " custom_attributes");
        }
      } catch (error) {
        report('could not clean "' + key + '" of ' + where, error);
      }
    });
  }

  function adoptSettings(value) {
    if (value === settingsProxy && value !== undefined) {
      return;
    }
    if (isObject(value)) {
      settingsTarget = strip(value, "window.intercomSettings");
      if (isRecord(settingsTarget.custom_attributes)) {
        settingsTarget.custom_attributes = guardNested(settingsTarget.custom_attributes, "window.intercomSettings");
      }
      settingsProxy = new Proxy(settingsTarget, settingsHandler);
    } else {
      settingsTarget = value;
      settingsProxy = value;
    }
  }

  // Accessor properties on window: the widget replaces window.Intercom when it loads,
  // and page code may assign either at any time; each assignment is re-wrapped.
  // Not configurable, so later code cannot quietly swap the accessor out.
  function defineGuarded(name, adopt, read) {
    var existing = Object.getOwnPropertyDescriptor(root, name);
    var current;
    try {
      current = existing ? ("value" in existing ? existing.value : existing.get && existing.get.call(root)) : undefined;
    } catch (error) {
      report("could not read window." + name, error);
    }
    adopt(current);
    if (existing && !existing.configurable) {
      durable[name] = false;
      lastRaw[name] = current;
      return false;
    }
    Object.defineProperty(root, name, {
      configurable: false,
      enumerable: true,
      get: read,
      set: adopt,
    });
    return true;
  }

  // Without the accessor (a top-level `var`), the guarded value is written into the
  // plain property instead, and whatever page code or the widget put there since is
  // adopted first: called before each of our own uses of window.Intercom / intercomSettings.
  var lastRaw = { Intercom: undefined, intercomSettings: undefined }; // last value adopted
  var readOnly = { Intercom: false, intercomSettings: false };
  var GUARDED = {
    Intercom: [adoptIntercom, function () { return guardedIntercom; }],
    intercomSettings: [adoptSettings, function () { return settingsProxy; }],
  };
  function resync() {
    Object.keys(GUARDED).forEach(function (name) {
      if (durable[name]) {
        return;
      }
      var adopt = GUARDED[name][0];
      var guarded = GUARDED[name][1];
      var value;
      try {
        value = root[name];
      } catch (error) {
        return;
      }
      if (value === guarded() || (readOnly[name] && value === lastRaw[name])) {
        return;
      }
      if (value !== lastRaw[name]) {
        adopt(value);
        lastRaw[name] = value;
      }
      var took = false;
      try {
        root[name] = guarded();
        // Read back: an accessor's setter may ignore what it is given, and the
        // widget reads the getter, not what we wrote.
        took = root[name] === guarded();
      } catch (error) {
        // read-only: below
      }
      if (!took) {
        // The page's own value stays. Cleaned in place where it can be; our own
        // calls are clean regardless.
        readOnly[name] = true;
        if (name === "intercomSettings" && isObject(value)) {
          stripInPlace(value, "window.intercomSettings");
        }
      }
    });
  }

  function installGuard(extraKeys) {
    protect(extraKeys);
    if (guardInstalled) {
      // Keys learnt later also apply to what is already stored; in place, so that
      // references page code holds to window.intercomSettings stay valid.
      resync();
      if (isRecord(settingsTarget)) {
        stripInPlace(settingsTarget, "window.intercomSettings");
      }
      if (isLoaderStub(innerIntercom)) {
        guardQueue(innerIntercom.q);
      }
      return api;
    }
    guardInstalled = true;
    defineGuarded("Intercom", adoptIntercom, function () {
      return guardedIntercom;
    });
    defineGuarded("intercomSettings", adoptSettings, function () {
      return settingsProxy;
    });
    var fixed = ["Intercom", "intercomSettings"].filter(function (name) {
      return !durable[name];
    });
    if (fixed.length) {
      // A top-level `var Intercom` / `var intercomSettings` makes a binding that cannot
      // be redefined. Its value is replaced by a guarded one where it is writable, and
      // re-checked before each of our own calls; what page code assigns in between is not.
      resync();
      report("cannot keep guarding window." + fixed.join(" / window.") + " (declared with var?): " +
        "cleaned now and before each call messenger.js makes, but an object page code assigns " +
        "to it later is not cleaned until then");
    }
    return api;
  }

  // The loader stub Intercom documents: calls are queued in `q` until the widget loads.
  // False when window.Intercom is neither a function nor replaceable (a read-only var).
  function ensureStub() {
    resync();
    if (typeof innerIntercom === "function") {
      return true;
    }
    var stub = function () {
      stub.c(arguments);
    };
    stub.q = [];
    stub.c = function (args) {
      stub.q.push(args);
    };
    try {
      root.Intercom = stub;
    } catch (error) {
      // read-only: reported below
    }
    resync();
    if (typeof innerIntercom !== "function") {
      report("window.Intercom is " + typeof innerIntercom + " and cannot be replaced: the Messenger cannot boot");
      return false;
    }
    return true;
  }

  // Our own keys in window.intercomSettings (undefined removes one). Never throws: a
  // frozen or read-only intercomSettings is reported once and left as it is.
  var settingsWriteReported = false;
  function setSettingsKey(key, value) {
    try {
      resync();
      if (!isRecord(settingsTarget)) {
        root.intercomSettings = {};
        resync();
      }
      if (!isRecord(settingsTarget)) {
        throw new TypeError("window.intercomSettings is read-only");
      }
      if (value === undefined) {
        delete settingsTarget[key];
      } else {
        settingsTarget[key] = value;
      }
    } catch (error) {
      if (!settingsWriteReported) {
        settingsWriteReported = true;
        report("could not write " + key + " into window.intercomSettings; the Messenger itself is not affected", error);
      }
    }
  }

  // ---------------------------------------------------------------------------------
  // The token endpoint
  // ---------------------------------------------------------------------------------

  function TokenError(message, status, retryable, problem) {
    var error = new Error(message);
    error.name = "TokenError";
    error.status = status || 0;
    error.retryable = !!retryable;
    error.problem = problem || null;
    return error;
  }

  function decodeClaims(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) {
        part += "=";
      }
      var binary = root.atob(part);
      // The payload is UTF-8: a non-ASCII user id must compare equal across tokens.
      var text = typeof TextDecoder === "function"
        ? new TextDecoder().decode(Uint8Array.from(binary, function (c) { return c.charCodeAt(0); }))
        : binary;
      return JSON.parse(text) || {};
    } catch (error) {
      return {};
    }
  }

  function validToken(data, expectedAppId) {
    if (!data || typeof data.token !== "string" || !JWT_SHAPE.test(data.token)) {
      throw TokenError("the token endpoint answered without a JWT", 0, false);
    }
    if (typeof data.app_id !== "string" || !data.app_id || typeof data.api_base !== "string") {
      throw TokenError("the token endpoint answered without app_id / api_base", 0, false);
    }
    if (typeof data.expires_at !== "number" || !isFinite(data.expires_at)) {
      throw TokenError("the token endpoint answered without expires_at", 0, false);
    }
    if (expectedAppId && data.app_id !== expectedAppId) {
      throw TokenError("token is for app " + data.app_id + ", expected " + expectedAppId, 0, false);
    }
    return data;
  }

  function retryAfterMs(response) {
    var header = response.headers.get("Retry-After");
    var seconds = header && /^\d+$/.test(header) ? parseInt(header, 10) : NaN;
    return isFinite(seconds) ? seconds * 1000 : 0;
  }

  // ---------------------------------------------------------------------------------
  // Tabs: one token and one refresh for all of a user's tabs of this origin
  // ---------------------------------------------------------------------------------
  // Tabs that run the same token endpoint and workspace form a group: a BroadcastChannel
  // carries tokens and logouts between them, a Web Lock lets one tab at a time fetch,
  // and one lock per tab, held while it runs, tells how many peers may answer. The
  // token lives only in the memory of live tabs and on this channel, which only pages
  // of this origin (and storage partition) reach: nothing is written to storage, so a
  // tab opened after the last one closed, or another origin, learns nothing. Without
  // BroadcastChannel or Web Locks every tab fetches and refreshes on its own.

  var ASK_TIMEOUT_MS = 1000; // a peer that does not answer by then is not waited for

  function randomId() {
    var bytes = new Uint8Array(16);
    if (root.crypto && typeof root.crypto.getRandomValues === "function") {
      root.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i += 1) {
        bytes[i] = Math.floor(Math.random() * 256);
      }
    }
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function TabGroup(messenger, options) {
    this.messenger = messenger;
    this.name = "identity-service-messenger " + options.tokenUrl + " " + (options.workspace || "");
    // Only a page that names its user may take a peer's token before it has one of its own:
    // without it, a tab left open by the previous user of the browser could answer.
    this.userKey = typeof options.userKey === "string" && options.userKey ? options.userKey : null;
    this.id = randomId();
    this.channel = null;
    this.locks = null;
    this.offer = null; // the latest token a peer announced
    this.asks = Object.create(null);
    this.releaseTab = null;
    var locks = root.navigator && root.navigator.locks;
    if (options.shareTabs === false || typeof root.BroadcastChannel !== "function") {
      return;
    }
    try {
      this.channel = new root.BroadcastChannel(this.name);
    } catch (error) {
      return;
    }
    var self = this;
    this.channel.onmessage = function (event) {
      self.receive(event.data);
    };
    if (locks && typeof locks.request === "function" && typeof locks.query === "function") {
      this.locks = locks;
      locks.request(this.name + " tab " + this.id, function () {
        return new Promise(function (release) {
          self.releaseTab = release;
        });
      }).catch(function () {
        self.locks = null;
      });
    }
  }

  TabGroup.prototype.post = function (message) {
    if (!this.channel) {
      return;
    }
    message.from = this.id;
    try {
      this.channel.postMessage(message);
    } catch (error) {
      report("could not tell the other tabs", error);
    }
  };

  // What other tabs need to reuse our token: the endpoint's answer and when it is due,
  // in this browser's clock, which all its tabs share.
  TabGroup.prototype.snapshot = function () {
    var current = this.messenger.current;
    return {
      data: this.messenger.currentData,
      userKey: this.userKey,
      userId: current.userId,
      expiresAt: current.expiresAt,
      refreshAt: current.refreshAt,
    };
  };

  TabGroup.prototype.announce = function () {
    if (this.messenger.current && this.messenger.currentData) {
      this.post({ type: "token", offer: this.snapshot() });
    }
  };

  function fresh(offer) {
    return isRecord(offer) && isRecord(offer.data) && typeof offer.refreshAt === "number" &&
      typeof offer.expiresAt === "number" && Date.now() < offer.refreshAt;
  }

  // A peer's token we may use: for the same user (our page's userKey before we have a
  // token; our token's user_id after), newer than ours, and not yet due.
  TabGroup.prototype.usable = function (offer) {
    if (!fresh(offer)) {
      return false;
    }
    var current = this.messenger.current;
    if (current) {
      return offer.userId === current.userId && offer.expiresAt > current.expiresAt;
    }
    return this.userKey !== null && offer.userKey === this.userKey;
  };

  TabGroup.prototype.receive = function (message) {
    var messenger = this.messenger;
    if (!isRecord(message) || message.from === this.id || messenger.stopped) {
      return;
    }
    if (message.type === "logout") {
      messenger.remoteLogout();
    } else if (message.type === "token") {
      if (this.usable(message.offer)) {
        this.offer = message.offer;
        if (messenger.state === "identified") {
          messenger.adopt(message.offer);
        }
      }
    } else if (message.type === "ask") {
      // Always answered, null included, so that the asker need not wait for a timeout.
      var current = messenger.current;
      var same = current && messenger.state === "identified" && Date.now() < current.refreshAt &&
        (message.userId ? message.userId === current.userId : !!this.userKey && message.userKey === this.userKey);
      this.post({ type: "offer", to: message.id, offer: same ? this.snapshot() : null });
    } else if (message.type === "offer" && this.asks[message.to]) {
      this.asks[message.to](message.offer);
    }
  };

  // The peers' best usable token, or null: asks every live tab of the group and waits
  // for all their answers (or ASK_TIMEOUT_MS).
  TabGroup.prototype.ask = function () {
    var self = this;
    if (!this.locks || (!this.userKey && !this.messenger.current)) {
      return Promise.resolve(null);
    }
    var prefix = this.name + " tab ";
    var mine = prefix + this.id;
    return this.locks.query().then(function (state) {
      var peers = (state.held || []).filter(function (lock) {
        return typeof lock.name === "string" && lock.name.indexOf(prefix) === 0 && lock.name !== mine;
      }).length;
      if (!peers) {
        return null;
      }
      var id = randomId();
      return new Promise(function (resolve) {
        var best = null;
        var answers = 0;
        var timer = root.setTimeout(finish, ASK_TIMEOUT_MS);
        function finish() {
          root.clearTimeout(timer);
          delete self.asks[id];
          resolve(best);
        }
        self.asks[id] = function (offer) {
          answers += 1;
          if (self.usable(offer) && (!best || offer.expiresAt > best.expiresAt)) {
            best = offer;
          }
          if (answers >= peers) {
            finish();
          }
        };
        var current = self.messenger.current;
        self.post({ type: "ask", id: id, userKey: self.userKey, userId: current ? current.userId : null });
      });
    }, function () {
      return null;
    });
  };

  // Runs `task` while this tab alone of the group may fetch a token.
  TabGroup.prototype.exclusive = function (task) {
    if (!this.locks) {
      return Promise.resolve().then(task);
    }
    return this.locks.request(this.name + " token", function () {
      return task();
    });
  };

  // A usable token the group already has: announced earlier, else asked for now.
  TabGroup.prototype.find = function () {
    if (this.usable(this.offer)) {
      return Promise.resolve(this.offer);
    }
    return this.ask();
  };

  TabGroup.prototype.close = function (announceLogout) {
    if (announceLogout) {
      this.post({ type: "logout" });
    }
    if (this.channel) {
      try {
        this.channel.close();
      } catch (error) {
        // closing twice is harmless
      }
      this.channel = null;
    }
    if (this.releaseTab) {
      this.releaseTab();
      this.releaseTab = null;
    }
    this.locks = null;
    var asks = this.asks;
    this.asks = Object.create(null);
    Object.keys(asks).forEach(function (id) {
      asks[id](null);
    });
  };

  // ---------------------------------------------------------------------------------
  // The messenger: acquire, boot, refresh, logout
  // ---------------------------------------------------------------------------------

  var active = null;

  function Messenger(options) {
    this.options = options;
    this.state = "starting";
    this.current = null; // {token, expiresAtMs, refreshAtMs, userId, attributes}
    this.timer = null;
    this.fetching = null;
    this.refreshing = null; // one refresh at a time: timer and tab wake-up may coincide
    this.lastError = null;
    this.widgetRequested = false;
    this.reached = false; // true once the browser let us read one of the endpoint's answers
    this.booted = false;
    this.stopped = false;
    this.ownShutdown = false; // true while we shut down to re-boot, not to stop
    this.currentData = null; // the token endpoint's answer behind `current`, for other tabs
    this.tabs = new TabGroup(this, options);
    var self = this;
    this.ready = new Promise(function (resolve) {
      self.resolveReady = resolve;
    });
    this.onVisible = function () {
      if (root.document && root.document.visibilityState === "hidden") {
        return;
      }
      self.wake();
    };
  }

  // A page callback that throws must not stop the Messenger in the middle of a step.
  function callBack(callback, value) {
    if (typeof callback === "function") {
      try {
        callback(value);
      } catch (error) {
        report("a callback passed to startMessenger threw", error);
      }
    }
  }

  // Our own calls into Intercom: through the guard, and never throwing (page code may
  // have put anything in window.Intercom).
  function callIntercom(method, data) {
    resync();
    var target = guardedIntercom;
    if (typeof target !== "function") {
      report("window.Intercom is not a function; Intercom('" + method + "') was not sent");
      return false;
    }
    try {
      if (data === undefined) {
        target(method);
      } else {
        target(method, data);
      }
      return true;
    } catch (error) {
      report("Intercom('" + method + "') threw", error);
      return false;
    }
  }

  Messenger.prototype.setState = function (state) {
    this.state = state;
    callBack(this.options.onStateChange, state);
  };

  Messenger.prototype.fail = function (error) {
    this.lastError = error;
    if (typeof this.options.onError === "function") {
      callBack(this.options.onError, error);
    } else {
      report("token endpoint failed: " + error.message);
    }
  };

  Messenger.prototype.requestOnce = function () {
    var self = this;
    var options = this.options;
    var headers = { Accept: "application/json", "Content-Type": "application/json" };
    var access = typeof options.getAccessToken === "function" ? options.getAccessToken : null;
    var sent = false; // false while getAccessToken() runs: its failure is not the network's
    // In an executor, so that a getAccessToken() that throws synchronously becomes
    // a rejection (retried below) instead of escaping startMessenger().
    return new Promise(function (resolve) {
      resolve(access ? access() : null);
    })
      .then(function (accessToken) {
        if (accessToken) {
          headers.Authorization = "Bearer " + accessToken;
        }
        sent = true;
        return root.fetch(options.tokenUrl, {
          method: "POST",
          headers: headers,
          body: JSON.stringify(options.workspace ? { workspace: options.workspace } : {}),
          // Cookies only when the session cookie is how we authenticate; a bearer
          // token needs no ambient credentials.
          credentials: options.credentials || (access ? "same-origin" : "include"),
          cache: "no-store",
          redirect: "error",
        });
      })
      .then(
        function (response) {
          if (response.ok) {
            self.reached = true; // this page's origin may read the endpoint's answers
            return response.json().then(function (data) {
              return validToken(data, options.appId);
            });
          }
          var status = response.status;
          // 5xx, 429 and 408 may pass; 4xx means "not logged in" or misconfigured.
          var retryable = status >= 500 || status === 429 || status === 408;
          var wait = retryAfterMs(response);
          return response
            .json()
            .catch(function () {
              return null;
            })
            .then(function (problem) {
              var detail = problem && problem.detail ? ": " + problem.detail : "";
              var error = TokenError("token endpoint answered " + status + detail, status, retryable, problem);
              error.retryAfterMs = wait;
              throw error;
            });
        },
        function (error) {
          if (error && error.name === "TokenError") {
            throw error;
          }
          var message = "token request failed: " + (error && error.message);
          if (!sent) {
            throw TokenError(message, 0, true); // getAccessToken() failed: may pass
          }
          return diagnose(options.tokenUrl).then(function (answered) {
            if (!answered) {
              throw TokenError(message + " (" + options.tokenUrl + " could not be reached)", 0, true);
            }
            if (self.reached) {
              // This origin got a token from the endpoint already, so it is allowed: an
              // answer without CORS headers now is a proxy's own error page (a restart).
              throw TokenError(
                message + " (" + options.tokenUrl + " answered without CORS headers, as a " +
                  "front proxy's error page does while the service restarts)",
                0,
                true
              );
            }
            var origin = pageOrigin();
            var cors = TokenError(
              "the browser refused to let this page (" + origin + ") read the answer of " +
                options.tokenUrl + ", though the service answered: the likely cause is CORS, this " +
                'origin is not allowed. Add "' + origin + '" to service.cors_origins (and, for ' +
                "cookie authentication, to the workspace's auth allowed_origins). A redirect " +
                "from the token URL fails the same way.",
              0,
              true
            );
            cors.cors = true;
            throw cors;
          });
        }
      );
  };

  function pageOrigin() {
    try {
      return root.location.origin;
    } catch (error) {
      return "this page's origin";
    }
  }

  // A fetch refused by CORS and one that never reached the server fail alike (a
  // TypeError). A no-cors request tells them apart as well as a page can: the
  // browser hands back an opaque answer when the server answered at all. HEAD, with
  // no credentials and no body: the endpoint refuses it (405) without minting.
  function diagnose(url) {
    try {
      return root
        .fetch(url, { method: "HEAD", mode: "no-cors", credentials: "omit", cache: "no-store" })
        .then(
          function () {
            return true;
          },
          function () {
            return false;
          }
        );
    } catch (error) {
      return Promise.resolve(false);
    }
  }

  Messenger.prototype.delay = function (attempt, hint) {
    var retry = this.options.retry || {};
    var base = retry.baseDelayMs || 1000;
    var max = retry.maxDelayMs || 30000;
    var backoff = Math.min(max, base * Math.pow(2, attempt));
    // Jitter spreads out the retries of many tabs after an outage.
    var jittered = backoff / 2 + (Math.random() * backoff) / 2;
    return Math.min(max, Math.max(jittered, hint || 0));
  };

  Messenger.prototype.sleep = function (ms) {
    var self = this;
    return new Promise(function (resolve) {
      self.timer = root.setTimeout(resolve, ms);
    });
  };

  // Fetch a token, retrying retryable failures with backoff, at most `attempts` times
  // (Infinity while refreshing: a working Messenger keeps trying until we succeed).
  Messenger.prototype.fetchToken = function (attempts) {
    var self = this;
    if (this.fetching) {
      return this.fetching;
    }
    var attempt = 0;
    var refused = 0;
    function tryOnce() {
      if (self.stopped) {
        return Promise.reject(TokenError("stopped", 0, false));
      }
      return self.requestOnce().catch(function (error) {
        attempt += 1;
        if (error.cors) {
          // Retried once, in case the network rather than CORS failed the first
          // time; a second refusal cannot pass by waiting, so it is final.
          refused += 1;
          error.retryable = refused < 2;
        }
        if (!error.retryable || attempt >= attempts || self.stopped) {
          throw error;
        }
        self.fail(error);
        return self.sleep(self.delay(attempt - 1, error.retryAfterMs)).then(tryOnce);
      });
    }
    this.fetching = tryOnce().then(
      function (data) {
        self.fetching = null;
        return data;
      },
      function (error) {
        self.fetching = null;
        throw error;
      }
    );
    return this.fetching;
  };

  // `shared`: the due times another tab computed for this token (same browser clock).
  Messenger.prototype.accept = function (data, fromPage, shared) {
    var claims = decodeClaims(data.token);
    var now = Date.now();
    // The lifetime comes from the token's own iat/exp (both server clock), so a
    // client clock that is off does not move the refresh.
    var lifetime = typeof claims.iat === "number" ? data.expires_at - claims.iat : data.expires_at - now / 1000;
    lifetime = Math.max(1, lifetime) * 1000;
    var expiresAt = now + lifetime;
    if (fromPage) {
      // A token rendered into the page may be older than the page view (cache,
      // back-forward cache): trust its exp too, in this device's clock.
      expiresAt = Math.min(expiresAt, data.expires_at * 1000);
    }
    var ratio = this.options.refreshRatio || 0.8;
    var refreshAt = Math.min(now + lifetime * ratio, expiresAt - 5000);
    if (shared) {
      // A peer's token may be well into its lifetime: its own due times hold.
      expiresAt = shared.expiresAt;
      refreshAt = shared.refreshAt;
    }
    var previous = this.current;
    this.currentData = data;
    this.current = {
      token: data.token,
      appId: data.app_id,
      apiBase: data.api_base,
      userId: claims.user_id,
      expiresAt: expiresAt,
      refreshAt: refreshAt,
      attributes: data.attributes || [],
    };
    installGuard(data.attributes || []);
    if (data.warnings && data.warnings.length) {
      warn("token endpoint warnings: " + data.warnings.join("; "));
    }
    return previous;
  };

  Messenger.prototype.schedule = function () {
    var self = this;
    root.clearTimeout(this.timer);
    if (this.stopped || !this.current) {
      return;
    }
    // At least a second: a token that arrives (nearly) expired must not spin.
    var wait = Math.max(1000, this.current.refreshAt - Date.now());
    this.timer = root.setTimeout(function () {
      self.refresh(true);
    }, wait);
  };

  Messenger.prototype.bootSettings = function () {
    var settings = {};
    var host = this.options.settings; // our snapshot (readOptions), never the page's object
    // Keys the token named since start are protected too; removed (and warned) once.
    stripInPlace(host, "startMessenger settings");
    Object.keys(host).forEach(function (key) {
      settings[key] = host[key];
    });
    settings.app_id = this.current ? this.current.appId : this.options.appId;
    settings.api_base = this.current ? this.current.apiBase : this.options.apiBase;
    if (this.current) {
      settings.intercom_user_jwt = this.current.token;
    }
    return settings;
  };

  Messenger.prototype.loadWidget = function (appId) {
    if (this.widgetRequested || (typeof innerIntercom === "function" && !isLoaderStub(innerIntercom))) {
      return; // already loading, or the widget is already on the page
    }
    this.widgetRequested = true;
    var template = this.options.widgetUrl || DEFAULT_WIDGET_URL;
    var script = root.document.createElement("script");
    script.async = true;
    script.src = template.replace("{app_id}", encodeURIComponent(appId));
    var nonce = this.options.nonce || LOADER_NONCE;
    if (nonce) {
      script.nonce = nonce;
    }
    var self = this;
    script.onload = function () {
      // The widget may initialise now or later (after fetching the rest of its code).
      // With the accessor on window.Intercom we see it take over; without it (a
      // var-declared Intercom) we look for it, for at most 10 s.
      var checks = 0;
      (function check() {
        resync();
        if (hooks.onWidget && !durable.Intercom && !self.stopped && checks < 100) {
          checks += 1;
          root.setTimeout(check, 100);
        }
      })();
    };
    script.onerror = function () {
      report("could not load the Intercom widget from " + script.src);
    };
    (root.document.head || root.document.documentElement).appendChild(script);
  };

  // Boot first: ahead of calls the page queued before the widget loaded, so that they
  // reach an identified Messenger (the guard adds the JWT to them as they are drained).
  // Exactly one boot per start: while our boot waits in the loader queue, nothing in
  // window.intercomSettings names an app (the widget would boot from that too, once
  // more). Our settings are written there once the widget has taken over window.Intercom,
  // after its start-up code has run. False when window.Intercom cannot be set at all.
  Messenger.prototype.boot = function () {
    var self = this;
    var settings = this.bootSettings();
    if (!ensureStub()) {
      return false;
    }
    if (isLoaderStub(innerIntercom)) {
      hooks.holdAppId = true;
      if (isRecord(settingsTarget)) {
        delete settingsTarget.app_id;
      }
      resync();
      if (readOnly.intercomSettings && isObject(lastRaw.intercomSettings)) {
        // The widget reads the page's own object there: app_id comes out of it too.
        stripInPlace(lastRaw.intercomSettings, "window.intercomSettings");
      }
      hooks.onWidget = function () {
        hooks.onWidget = null;
        root.setTimeout(function () {
          hooks.holdAppId = false;
          if (!self.stopped) {
            self.writeSettings();
          }
        }, 0);
      };
      queueFirst(["boot", settings]);
      this.booted = true;
      this.loadWidget(settings.app_id);
    } else {
      callIntercom("boot", settings);
      this.booted = true;
      this.writeSettings();
    }
    return true;
  };

  // Our boot goes ahead of the calls page code queued; into a fresh (clean) queue when
  // the page's cannot be changed in place (a frozen array, an accessor entry).
  function queueFirst(entry) {
    var stub = innerIntercom;
    try {
      stub.q.unshift(entry);
      return;
    } catch (error) {
      // below
    }
    try {
      stub.q = [entry].concat(guardQueue(stub.q));
      if (stub.q[0] === entry) {
        return;
      }
    } catch (error) {
      // below
    }
    report("could not queue the boot in window.Intercom.q; calling the loader stub instead");
    callIntercom("boot", entry[1]);
  }

  Messenger.prototype.writeSettings = function () {
    var settings = this.bootSettings();
    Object.keys(settings).forEach(function (key) {
      setSettingsKey(key, settings[key]);
    });
  };

  Messenger.prototype.identified = function (data, fromPage, shared) {
    this.accept(data, fromPage, shared);
    hooks.jwt = this.current.token;
    var booted = false;
    try {
      booted = this.boot();
    } catch (error) {
      report("could not boot the Messenger", error);
    }
    if (!booted) {
      hooks.jwt = null;
      this.current = null;
      this.setState("failed");
      this.resolveReady("failed");
      return;
    }
    this.schedule();
    this.setState("identified");
    this.resolveReady("identified");
  };

  Messenger.prototype.giveUp = function (error) {
    this.fail(error);
    var mode = this.options.onFailure || "none";
    if (mode === "anonymous" && this.options.appId && !this.stopped) {
      // A visitor, never a user we could not verify: no JWT and no identity keys.
      hooks.jwt = null;
      var booted = false;
      try {
        booted = this.boot();
      } catch (error) {
        report("could not boot the Messenger", error);
      }
      if (booted) {
        this.setState("anonymous");
        this.resolveReady("anonymous");
        return;
      }
    } else if (mode === "anonymous") {
      report("onFailure is \"anonymous\" but appId is not set; the Messenger stays off");
    }
    this.setState("failed");
    this.resolveReady("failed");
  };

  Messenger.prototype.start = function () {
    var self = this;
    var options = this.options;
    if (root.document && root.document.addEventListener) {
      root.document.addEventListener("visibilitychange", this.onVisible);
      root.addEventListener("pageshow", this.onVisible);
    }
    if (options.token) {
      try {
        var rendered = validToken(options.token, options.appId);
        // A page served from a cache or restored much later may hold a dead token:
        // never boot with it, fetch a fresh one instead.
        if (rendered.expires_at * 1000 - Date.now() > 10000 || !options.tokenUrl) {
          this.identified(rendered, true);
          return;
        }
      } catch (error) {
        report("ignored the token rendered into the page", error);
      }
    }
    if (!options.tokenUrl) {
      this.giveUp(TokenError("no tokenUrl and no usable token", 0, false));
      return;
    }
    var attempts = (options.retry && options.retry.attempts) || 5;
    this.firstToken(attempts).then(null, function (error) {
      if (!self.stopped) {
        self.giveUp(error);
      }
    });
  };

  // The first token: a fresh one another tab of this user holds, else our own request,
  // announced to the other tabs before the next tab may look.
  Messenger.prototype.firstToken = function (attempts) {
    var self = this;
    return this.tabs.exclusive(function () {
      if (self.stopped) {
        return null;
      }
      return self.tabs.find().then(function (offer) {
        if (self.stopped) {
          return null;
        }
        // One announced while the peers answered counts too.
        offer = offer || (self.tabs.usable(self.tabs.offer) ? self.tabs.offer : null);
        if (offer) {
          self.identified(offer.data, false, offer);
          return null;
        }
        return self.fetchToken(attempts).then(function (data) {
          if (!self.stopped) {
            self.identified(data, false);
            if (self.state === "identified") {
              self.tabs.announce();
            }
          }
          return null;
        });
      });
    });
  };

  // A fresher token of the same user, fetched by another tab: used as our own refresh.
  Messenger.prototype.adopt = function (offer) {
    try {
      this.accept(offer.data, false, offer);
      hooks.jwt = this.current.token;
      callIntercom("update", { intercom_user_jwt: this.current.token });
      setSettingsKey("intercom_user_jwt", this.current.token);
    } finally {
      this.schedule();
    }
  };

  // Another tab logged out: this browser's session has ended here too.
  Messenger.prototype.remoteLogout = function () {
    if (this.stopped) {
      return;
    }
    this.halt();
    callIntercom("shutdown");
  };

  // `shared` (the timer, a tab waking up): a fresher token another tab of this user
  // fetched is taken instead of a request. The page's own refresh() always fetches.
  Messenger.prototype.refresh = function (shared) {
    var self = this;
    if (this.refreshing) {
      return this.refreshing;
    }
    function done(state) {
      self.refreshing = null;
      return state;
    }
    // A refresh that fails unexpectedly must not leave `refreshing` set: every later
    // refresh would wait on it, and none would be scheduled again.
    this.refreshing = this.refreshOnce(shared === true).then(done, function (error) {
      report("refresh failed", error);
      self.schedule();
      return done(self.state);
    });
    return this.refreshing;
  };

  Messenger.prototype.refreshOnce = function (shared) {
    var self = this;
    if (this.stopped) {
      return Promise.resolve(this.state);
    }
    if (!this.options.tokenUrl) {
      warn("no tokenUrl: the token cannot be refreshed and will expire");
      return Promise.resolve(this.state);
    }
    if (this.state !== "identified") {
      // Not identified yet (the endpoint failed, or we are a visitor): try again.
      return this.fetchToken((this.options.retry && this.options.retry.attempts) || 5).then(
        function (data) {
          if (self.stopped) {
            return self.state;
          }
          if (self.state === "anonymous") {
            self.shutdownForReboot(); // a visitor becoming a user needs a fresh session
          }
          self.identified(data, false);
          if (self.state === "identified") {
            self.tabs.announce();
          }
          return self.state;
        },
        function (error) {
          self.fail(error);
          return self.state;
        }
      );
    }
    return this.tabs.exclusive(function () {
      if (self.stopped || self.state !== "identified") {
        return self.state;
      }
      if (shared && Date.now() < self.current.refreshAt) {
        return self.state; // another tab refreshed while we waited for the lock
      }
      return (shared ? self.tabs.find() : Promise.resolve(null)).then(function (offer) {
        if (self.stopped) {
          return self.state;
        }
        if (offer) {
          self.adopt(offer);
          return self.state;
        }
        if (shared && Date.now() < self.current.refreshAt) {
          return self.state; // adopted while the peers answered: theirs was the same token
        }
        return self.refreshFetch();
      });
    });
  };

  Messenger.prototype.refreshFetch = function () {
    var self = this;
    return this.fetchToken(Infinity).then(
      function (data) {
        if (self.stopped) {
          return self.state;
        }
        var previous = self.accept(data, false);
        hooks.jwt = self.current.token;
        try {
          if (previous && previous.userId !== self.current.userId) {
            // Another user logged in (in another tab): a Messenger session never
            // carries over between users.
            self.shutdownForReboot();
            self.boot();
          } else {
            callIntercom("update", { intercom_user_jwt: self.current.token });
            setSettingsKey("intercom_user_jwt", self.current.token);
          }
        } finally {
          self.schedule(); // whatever happened above, the next refresh is due
        }
        self.tabs.announce();
        return self.state;
      },
      function (error) {
        self.fail(error);
        if (!error.retryable && !self.stopped) {
          // Logged out of the product, or no longer allowed: end the identified session
          // rather than keep showing a user we can no longer vouch for.
          self.logout();
        }
        return self.state;
      }
    );
  };

  Messenger.prototype.shutdownForReboot = function () {
    this.ownShutdown = true;
    try {
      callIntercom("shutdown");
    } finally {
      this.ownShutdown = false;
    }
  };

  // Timers are throttled in hidden tabs: when the tab comes back, catch up at once.
  Messenger.prototype.wake = function () {
    if (this.stopped || this.fetching) {
      return;
    }
    if (this.state === "identified" && this.current && Date.now() >= this.current.refreshAt) {
      this.refresh(true);
    } else if ((this.state === "failed" || this.state === "anonymous") && this.lastError && this.lastError.retryable) {
      this.refresh(true);
    }
  };

  // `everywhere`: a logout in this tab, which ends the Messenger in the user's other tabs.
  Messenger.prototype.halt = function (everywhere) {
    this.stopped = true;
    this.tabs.close(everywhere === true);
    root.clearTimeout(this.timer);
    this.timer = null;
    hooks.jwt = null;
    hooks.onShutdown = null;
    hooks.onWidget = null;
    hooks.holdAppId = false;
    if (root.document && root.document.removeEventListener) {
      root.document.removeEventListener("visibilitychange", this.onVisible);
      root.removeEventListener("pageshow", this.onVisible);
    }
    if (isRecord(settingsTarget)) {
      delete settingsTarget.intercom_user_jwt;
    }
    this.current = null;
    this.currentData = null;
    if (active === this) {
      active = null;
    }
    this.setState("stopped");
    this.resolveReady("stopped");
  };

  Messenger.prototype.logout = function () {
    if (this.stopped) {
      return;
    }
    this.halt(true);
    callIntercom("shutdown");
  };

  var OPTION_NAMES = [
    "tokenUrl", "workspace", "getAccessToken", "credentials", "appId", "apiBase", "protectedKeys",
    "settings", "widgetUrl", "onFailure", "retry", "refreshRatio", "nonce", "token", "onError",
    "onStateChange", "userKey", "shareTabs",
  ];

  // Named members of a page object, each read once (a throwing getter reads as absent).
  function pick(value, names, where) {
    var out = {};
    if (!isObject(value)) {
      return out;
    }
    names.forEach(function (name) {
      try {
        out[name] = value[name];
      } catch (error) {
        report("could not read " + where + "." + name + "; ignored", error);
      }
    });
    return out;
  }

  // startMessenger's options as a plain snapshot: read once, so later reads cannot
  // answer differently (settings above all, which are cleaned once and kept).
  function readOptions(given) {
    var options = pick(given, OPTION_NAMES, "options");
    if (options.protectedKeys !== undefined && !Array.isArray(options.protectedKeys)) {
      report("options.protectedKeys must be an array of names; ignored");
    }
    options.protectedKeys = Array.isArray(options.protectedKeys) ? options.protectedKeys.slice() : [];
    if (isObject(options.retry)) {
      options.retry = pick(options.retry, ["attempts", "baseDelayMs", "maxDelayMs"], "options.retry");
    }
    if (isObject(options.token)) {
      options.token = pick(
        options.token, ["token", "app_id", "api_base", "expires_at", "attributes", "warnings"], "options.token"
      );
    }
    return options;
  }

  function readSettings(given) {
    var settings = {};
    var clean = cleanData(given === undefined || given === null ? {} : given, "startMessenger settings");
    if (!isRecord(clean)) {
      report("options.settings must be an object; ignored");
      return settings;
    }
    Object.keys(clean).forEach(function (key) {
      if (OWNED_KEYS.indexOf(key) >= 0) {
        warn('ignored "' + key + '" in settings: it comes from the token endpoint');
      } else {
        settings[key] = clean[key];
      }
    });
    return settings;
  }

  function startMessenger(given) {
    var options = readOptions(given);
    if (!options.tokenUrl && !options.token) {
      throw new TypeError(PREFIX + "startMessenger needs tokenUrl (or a server-rendered token)");
    }
    if (active) {
      throw new Error(PREFIX + "already started; call logout() before starting again");
    }
    installGuard(options.protectedKeys.concat(ALWAYS_PROTECTED));
    options.settings = readSettings(options.settings);
    // The loader stub from the start, so page code may call Intercom(...) at once;
    // its calls wait in the queue (guarded) until the widget loads.
    ensureStub();
    var messenger = new Messenger(options);
    active = messenger;
    // Anything (page code included) that shuts the Messenger down ends our session too.
    hooks.onShutdown = function () {
      if (active === messenger && !messenger.ownShutdown) {
        messenger.halt(true);
      }
    };
    messenger.controller = {
      ready: messenger.ready,
      logout: function () {
        messenger.logout();
      },
      refresh: function () {
        return messenger.refresh();
      },
      update: function (data) {
        resync();
        return guardedIntercom("update", data);
      },
      get state() {
        return messenger.state;
      },
    };
    messenger.start();
    return messenger.controller;
  }

  var api = {
    version: VERSION,
    startMessenger: startMessenger,
    installGuard: installGuard,
    // The running messenger's controller, for pages that started it from a
    // server-rendered snippet and so hold no reference to it.
    current: function () {
      return active ? active.controller : null;
    },
    logout: function () {
      if (active) {
        active.logout();
      }
    },
  };
  Object.defineProperty(root, "IdentityServiceMessenger", {
    value: Object.freeze(api),
    configurable: false,
    enumerable: false,
    writable: false,
  });
})(typeof globalThis !== "undefined" ? globalThis : window);
