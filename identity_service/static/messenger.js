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

  // ---------------------------------------------------------------------------------
  // The guard: every call into Intercom and every window.intercomSettings passes here.
  // ---------------------------------------------------------------------------------

  var protectedKeys = Object.create(null);
  ALWAYS_PROTECTED.forEach(function (key) {
    protectedKeys[key] = true;
  });

  var guardInstalled = false;
  var innerIntercom; // what page code or the widget assigned to window.Intercom
  var guardedIntercom; // what window.Intercom returns: a Proxy of innerIntercom
  var settingsTarget; // our copy of window.intercomSettings, protected keys removed
  var settingsProxy; // what window.intercomSettings returns
  // Set by the running messenger: the current JWT (null when not identified) and
  // a hook told when anything shuts the Messenger down.
  var hooks = { jwt: null, onShutdown: null };

  function protect(keys) {
    (keys || []).forEach(function (key) {
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

  // A plain copy of `data` without protected keys, one warning per removed key. Nested
  // custom_attributes is cleaned (and copied) too, as Intercom integrations nest there.
  function strip(data, where) {
    if (!isRecord(data)) {
      return data;
    }
    var clean = {};
    Object.keys(data).forEach(function (key) {
      if (protectedKeys[key]) {
        removedWarning(key, where);
      } else if (key === "custom_attributes" && isRecord(data[key])) {
        clean[key] = strip(data[key], where + " custom_attributes");
      } else {
        clean[key] = data[key];
      }
    });
    return clean;
  }

  // The arguments of one Intercom call, made safe: boot/update lose protected keys and,
  // once identified, carry the current JWT (an update without it is refused with 403
  // once Messenger security is enforced).
  function guardArgs(args) {
    var list = Array.prototype.slice.call(args);
    var method = list[0];
    if (method === "boot" || method === "update") {
      var data = strip(list[1], "Intercom('" + method + "')");
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
  // window.Intercom, and entries may have been pushed before the guard existed.
  function guardQueue(queue) {
    for (var i = 0; i < queue.length; i += 1) {
      if (queue[i] && typeof queue[i] === "object" && typeof queue[i].length === "number") {
        queue[i] = guardArgs(queue[i]);
      }
    }
    return queue;
  }

  var intercomHandler = {
    apply: function (target, thisArg, args) {
      var safe = guardArgs(args);
      if (safe[0] === "shutdown" && hooks.onShutdown) {
        hooks.onShutdown();
      }
      return Reflect.apply(target, thisArg, safe);
    },
    get: function (target, property) {
      var value = Reflect.get(target, property, target);
      if (property === "q" && Array.isArray(value)) {
        guardQueue(value);
      }
      return value;
    },
  };

  function adoptIntercom(value) {
    if (value === guardedIntercom && value !== undefined) {
      return;
    }
    innerIntercom = value;
    if (typeof value === "function") {
      if (Array.isArray(value.q)) {
        guardQueue(value.q);
      }
      guardedIntercom = new Proxy(value, intercomHandler);
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
        if (typeof key === "string" && protectedKeys[key]) {
          removedWarning(key, where);
          return true; // dropped, but page code written in strict mode must not throw
        }
        target[key] = key === "custom_attributes" ? guardNested(value, where) : value;
        return true;
      },
      defineProperty: function (target, key, descriptor) {
        if (typeof key === "string" && protectedKeys[key]) {
          removedWarning(key, where);
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

  // Removes protected keys in place, nested custom_attributes included: keys learnt
  // later apply to what is already stored, and references page code holds stay valid.
  function stripInPlace(record, where) {
    Object.keys(record).forEach(function (key) {
      if (protectedKeys[key]) {
        removedWarning(key, where);
        delete record[key];
      } else if (key === "custom_attributes" && isRecord(record[key])) {
        stripInPlace(record[key], where + " custom_attributes");
      }
    });
  }

  function adoptSettings(value) {
    if (value === settingsProxy && value !== undefined) {
      return;
    }
    if (isRecord(value)) {
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
    if (existing && !existing.configurable) {
      return false;
    }
    adopt(existing ? ("value" in existing ? existing.value : existing.get && existing.get.call(root)) : undefined);
    Object.defineProperty(root, name, {
      configurable: false,
      enumerable: true,
      get: read,
      set: adopt,
    });
    return true;
  }

  function installGuard(extraKeys) {
    protect(extraKeys);
    if (guardInstalled) {
      // Keys learnt later also apply to what is already stored; in place, so that
      // references page code holds to window.intercomSettings stay valid.
      if (isRecord(settingsTarget)) {
        stripInPlace(settingsTarget, "window.intercomSettings");
      }
      if (innerIntercom && Array.isArray(innerIntercom.q)) {
        guardQueue(innerIntercom.q);
      }
      return api;
    }
    guardInstalled = true;
    var durable = defineGuarded("Intercom", adoptIntercom, function () {
      return guardedIntercom;
    });
    durable =
      defineGuarded("intercomSettings", adoptSettings, function () {
        return settingsProxy;
      }) && durable;
    if (!durable) {
      // A top-level `var Intercom` / `var intercomSettings` makes a binding that cannot
      // be redefined. Clean what is there now, and say that later writes are unguarded.
      report("cannot guard window.Intercom / window.intercomSettings (declared with var?); " +
        "protected keys written later will not be removed");
      if (isRecord(root.intercomSettings)) {
        stripInPlace(root.intercomSettings, "window.intercomSettings");
      }
    }
    return api;
  }

  // The loader stub Intercom documents: calls are queued in `q` until the widget loads.
  function ensureStub() {
    if (typeof innerIntercom === "function") {
      return;
    }
    var stub = function () {
      stub.c(arguments);
    };
    stub.q = [];
    stub.c = function (args) {
      stub.q.push(args);
    };
    root.Intercom = stub;
  }

  function setSettingsKey(key, value) {
    if (!isRecord(settingsTarget)) {
      root.intercomSettings = {};
    }
    if (value === undefined) {
      delete settingsTarget[key];
    } else {
      settingsTarget[key] = value;
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
    this.booted = false;
    this.stopped = false;
    this.ownShutdown = false; // true while we shut down to re-boot, not to stop
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

  Messenger.prototype.setState = function (state) {
    this.state = state;
    if (typeof this.options.onStateChange === "function") {
      this.options.onStateChange(state);
    }
  };

  Messenger.prototype.fail = function (error) {
    this.lastError = error;
    if (typeof this.options.onError === "function") {
      this.options.onError(error);
    } else {
      report("token endpoint failed: " + error.message);
    }
  };

  Messenger.prototype.requestOnce = function () {
    var options = this.options;
    var headers = { Accept: "application/json", "Content-Type": "application/json" };
    var access = typeof options.getAccessToken === "function" ? options.getAccessToken : null;
    // In an executor, so that a getAccessToken() that throws synchronously becomes
    // a rejection (retried below) instead of escaping startMessenger().
    return new Promise(function (resolve) {
      resolve(access ? access() : null);
    })
      .then(function (accessToken) {
        if (accessToken) {
          headers.Authorization = "Bearer " + accessToken;
        }
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
          // Network failure, CORS refusal, or getAccessToken() threw: may pass.
          throw TokenError("token request failed: " + (error && error.message), 0, true);
        }
      );
  };

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
    function tryOnce() {
      if (self.stopped) {
        return Promise.reject(TokenError("stopped", 0, false));
      }
      return self.requestOnce().catch(function (error) {
        attempt += 1;
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

  Messenger.prototype.accept = function (data, fromPage) {
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
    var previous = this.current;
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
      self.refresh();
    }, wait);
  };

  Messenger.prototype.bootSettings = function () {
    var settings = {};
    var host = this.options.settings || {};
    Object.keys(host).forEach(function (key) {
      if (OWNED_KEYS.indexOf(key) >= 0) {
        warn('ignored "' + key + '" in settings: it comes from the token endpoint');
      } else {
        settings[key] = host[key];
      }
    });
    settings = strip(settings, "startMessenger settings");
    settings.app_id = this.current ? this.current.appId : this.options.appId;
    settings.api_base = this.current ? this.current.apiBase : this.options.apiBase;
    if (this.current) {
      settings.intercom_user_jwt = this.current.token;
    }
    return settings;
  };

  Messenger.prototype.loadWidget = function (appId) {
    if (this.widgetRequested || (typeof innerIntercom === "function" && !Array.isArray(innerIntercom.q))) {
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
      // Written only after the widget has booted from our queued call: an app_id in
      // intercomSettings at load time would make the widget boot a second time.
      if (!self.stopped && self.booted) {
        var settings = self.bootSettings();
        Object.keys(settings).forEach(function (key) {
          setSettingsKey(key, settings[key]);
        });
      }
    };
    script.onerror = function () {
      report("could not load the Intercom widget from " + script.src);
    };
    (root.document.head || root.document.documentElement).appendChild(script);
  };

  // Boot first: ahead of calls the page queued before the widget loaded, so that they
  // reach an identified Messenger (the guard adds the JWT to them as they are drained).
  Messenger.prototype.boot = function () {
    var settings = this.bootSettings();
    ensureStub();
    if (Array.isArray(innerIntercom.q)) {
      innerIntercom.q.unshift(["boot", settings]);
    } else {
      root.Intercom("boot", settings);
    }
    this.booted = true;
    this.loadWidget(settings.app_id);
    if (!Array.isArray(innerIntercom.q)) {
      Object.keys(settings).forEach(function (key) {
        setSettingsKey(key, settings[key]);
      });
    }
  };

  Messenger.prototype.identified = function (data, fromPage) {
    this.accept(data, fromPage);
    hooks.jwt = this.current.token;
    this.boot();
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
      this.boot();
      this.setState("anonymous");
      this.resolveReady("anonymous");
      return;
    }
    if (mode === "anonymous") {
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
    this.fetchToken(attempts).then(
      function (data) {
        if (!self.stopped) {
          self.identified(data, false);
        }
      },
      function (error) {
        if (!self.stopped) {
          self.giveUp(error);
        }
      }
    );
  };

  Messenger.prototype.refresh = function () {
    var self = this;
    if (this.refreshing) {
      return this.refreshing;
    }
    this.refreshing = this.refreshOnce().then(function (state) {
      self.refreshing = null;
      return state;
    });
    return this.refreshing;
  };

  Messenger.prototype.refreshOnce = function () {
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
          return self.state;
        },
        function (error) {
          self.fail(error);
          return self.state;
        }
      );
    }
    return this.fetchToken(Infinity).then(
      function (data) {
        if (self.stopped) {
          return self.state;
        }
        var previous = self.accept(data, false);
        hooks.jwt = self.current.token;
        if (previous && previous.userId !== self.current.userId) {
          // Another user logged in (in another tab): a Messenger session never
          // carries over between users.
          self.shutdownForReboot();
          self.boot();
        } else {
          root.Intercom("update", { intercom_user_jwt: self.current.token });
          setSettingsKey("intercom_user_jwt", self.current.token);
        }
        self.schedule();
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
      root.Intercom("shutdown");
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
      this.refresh();
    } else if ((this.state === "failed" || this.state === "anonymous") && this.lastError && this.lastError.retryable) {
      this.refresh();
    }
  };

  Messenger.prototype.halt = function () {
    this.stopped = true;
    root.clearTimeout(this.timer);
    this.timer = null;
    hooks.jwt = null;
    hooks.onShutdown = null;
    if (root.document && root.document.removeEventListener) {
      root.document.removeEventListener("visibilitychange", this.onVisible);
      root.removeEventListener("pageshow", this.onVisible);
    }
    if (isRecord(settingsTarget)) {
      delete settingsTarget.intercom_user_jwt;
    }
    this.current = null;
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
    this.halt();
    if (typeof root.Intercom === "function") {
      root.Intercom("shutdown");
    }
  };

  function startMessenger(options) {
    options = options || {};
    if (!options.tokenUrl && !options.token) {
      throw new TypeError(PREFIX + "startMessenger needs tokenUrl (or a server-rendered token)");
    }
    if (active) {
      throw new Error(PREFIX + "already started; call logout() before starting again");
    }
    installGuard((options.protectedKeys || []).concat(ALWAYS_PROTECTED));
    // The loader stub from the start, so page code may call Intercom(...) at once;
    // its calls wait in the queue (guarded) until the widget loads.
    ensureStub();
    var messenger = new Messenger(options);
    active = messenger;
    // Anything (page code included) that shuts the Messenger down ends our session too.
    hooks.onShutdown = function () {
      if (active === messenger && !messenger.ownShutdown) {
        messenger.halt();
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
        return root.Intercom("update", data);
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
