"""lint-frontend's regression table: insecure and safe snippets, each run through the real parser.

Each row: a file name (its suffix decides how it is read), its text, and every
finding expected as (line, key, rule). A row with no finding is safe code that
must stay clean. The insecure rows include each case the hand-written lexer
passed as clean (issue 16): subscript assignment, Object.assign as a value,
ternaries, calls in template literals, aliases, spreads, the npm SDK and
react-use-intercom.
"""

from __future__ import annotations

import textwrap

import pytest

from identity_service.frontend.lint import ALWAYS_PROTECTED, scan_text

KEYS = (*ALWAYS_PROTECTED, "plan", "teammates")
P, H, S = "protected-key-in-clear", "user-hash", "invalid-suppression"

Row = tuple[str, str, list[tuple[int, str, str]]]

INSECURE: dict[str, Row] = {
    "subscript-settings": (
        "a.js",
        'window["intercomSettings"] = {user_id: u};',
        [(1, "user_id", P)],
    ),
    "assign-as-value": (
        "a.js",
        "window.intercomSettings = Object.assign({}, base, {user_id: u});",
        [(1, "user_id", P)],
    ),
    "ternary-argument": (
        "a.js",
        "Intercom('update', loggedIn ? {email: e} : {});",
        [(1, "email", P)],
    ),
    "ternary-value-in-object": (
        "a.js",
        "Intercom('boot', {app_id, ...(paid ? {plan: p} : {})});",
        [(1, "plan", P)],
    ),
    "call-in-template-literal": (
        "a.js",
        "el.title = `${Intercom('update', {email: e})}`;",
        [(1, "email", P)],
    ),
    "alias-of-window-intercom": (
        "a.js",
        "const ic = window.Intercom;\nic('update', {plan});",
        [(2, "plan", P)],
    ),
    "alias-of-alias-bound": (
        "a.js",
        "var w = window; var ic = w.Intercom.bind(w);\nlet call = ic;\ncall('boot', {email});",
        [(3, "email", P)],
    ),
    "alias-with-fallback": (
        "a.js",
        "const ic = window.Intercom || function () {};\nic('update', {email});",
        [(2, "email", P)],
    ),
    "alias-of-settings": (
        "a.js",
        "const s = window.intercomSettings;\ns.user_id = id;\ns['plan'] = p;",
        [(2, "user_id", P), (3, "plan", P)],
    ),
    "spread-of-declared-object": (
        "a.js",
        "const base = {plan};\nIntercom('update', {...base, color: 'red'});",
        [(1, "plan", P)],
    ),
    "spread-shorthand-inline": ("a.js", "Intercom('update', {...{plan}});", [(1, "plan", P)]),
    "object-mutated-before-boot": (
        "a.js",
        "const settings = {app_id};\nsettings.email = e;\nIntercom('boot', settings);",
        [(2, "email", P)],
    ),
    "merged-into-declared": (
        "a.js",
        "const s = {app_id};\nObject.assign(s, {teammates: n});\nwindow.intercomSettings = s;",
        [(2, "teammates", P)],
    ),
    "returned-by-local-function": (
        "a.js",
        "function settingsFor(u) { return {app_id, user_id: u.id}; }\n"
        "Intercom('boot', settingsFor(me));",
        [(1, "user_id", P)],
    ),
    "returned-by-arrow": (
        "a.ts",
        "const make = (u: User) => ({ email: u.email });\nIntercom('update', make(user));",
        [(1, "email", P)],
    ),
    "method-in-variable": (
        "a.js",
        "const method = 'update';\nIntercom(method, {plan: 'pro'});",
        [(2, "plan", P)],
    ),
    "var-intercom-settings": (
        "a.js",
        "var intercomSettings = {app_id: 'a', email: e};",
        [(1, "email", P)],
    ),
    "nested-custom-attributes-write": (
        "a.js",
        "window.intercomSettings.custom_attributes.plan = 'pro';",
        [(1, "plan", P)],
    ),
    "logical-or-default": (
        "a.js",
        "Intercom('update', overrides || {teammates: 1});",
        [(1, "teammates", P)],
    ),
    "getter-key": (
        "a.js",
        "Intercom('update', { get email() { return me.email; } });",
        [(1, "email", P)],
    ),
    "computed-template-key": ("a.js", "Intercom('update', {[`plan`]: p});", [(1, "plan", P)]),
    "typescript-casts": (
        "a.ts",
        "(window as any).intercomSettings = { user_id: id } satisfies Settings;\n"
        "window.Intercom!('update', <Settings>{ plan });",
        [(1, "user_id", P), (2, "plan", P)],
    ),
    "sdk-default-import": (
        "app.ts",
        "import Intercom from '@intercom/messenger-js-sdk';\n"
        "Intercom({ app_id: 'abc', user_id: user.id, name: user.name });",
        [(2, "user_id", P)],
    ),
    "sdk-renamed-init": (
        "app.js",
        "import startMessenger from '@intercom/messenger-js-sdk';\n"
        "startMessenger({app_id, email});",
        [(2, "email", P)],
    ),
    "sdk-named-update-and-boot": (
        "app.tsx",
        "import { Intercom, update, boot as start } from '@intercom/messenger-js-sdk';\n"
        "update({ plan });\nstart({ app_id, user_hash: h });",
        [(2, "plan", P), (3, "user_hash", H)],
    ),
    "sdk-namespace": (
        "app.mjs",
        "import * as messenger from '@intercom/messenger-js-sdk';\nmessenger.update({teammates});",
        [(2, "teammates", P)],
    ),
    "sdk-require": (
        "app.cjs",
        "const { update } = require('@intercom/messenger-js-sdk');\nupdate({email});",
        [(2, "email", P)],
    ),
    "react-use-intercom-boot": (
        "Help.tsx",
        "import { useIntercom } from 'react-use-intercom';\n"
        "export function Help() {\n"
        "  const { boot, update } = useIntercom();\n"
        "  boot({ userId, customAttributes: { plan } });\n"
        "  update({ email });\n"
        "  return <button onClick={() => update({ name })}>Help</button>;\n"
        "}",
        [(4, "user_id", P), (4, "plan", P), (5, "email", P)],
    ),
    "react-use-intercom-renamed-and-object": (
        "Help.jsx",
        "import { useIntercom as useMessenger } from 'react-use-intercom';\n"
        "const intercom = useMessenger();\n"
        "const { update: refresh } = useMessenger();\n"
        "intercom.boot({ userHash: h });\nrefresh({ customAttributes: attrs });\n"
        "const attrs = { teammates: 3 };",
        [(4, "user_hash", H), (6, "teammates", P)],
    ),
    "react-use-intercom-hook-behind-a-flag": (
        "useSupport.ts",
        "import { useIntercom as useLib } from 'react-use-intercom';\n"
        "const useSupport = enabled ? useLib : () => ({ boot: noop });\n"
        "export function useBootSupport(user: User) {\n"
        "  const support = useSupport();\n"
        "  support.boot({ email: user.email, userHash: user.hash, intercomUserJwt: user.jwt });\n"
        "}",
        [(5, "email", P), (5, "user_hash", H)],
    ),
    "react-use-intercom-provider": (
        "App.tsx",
        "import { IntercomProvider } from 'react-use-intercom';\n"
        "export const App = () => (\n"
        "  <IntercomProvider appId={APP} autoBoot autoBootProps={{ email: me.email }}>\n"
        "    <Page />\n  </IntercomProvider>\n);",
        [(3, "email", P)],
    ),
    "html-inline-script": (
        "page.html",
        '<body>\n<script nonce="abc">\n'
        "  Intercom('boot', {app_id: 'a', plan: 'pro'});\n</script>",
        [(3, "plan", P)],
    ),
    "html-two-scripts-share-globals": (
        "page.html",
        "<script>var base = {email: e};</script>\n<script>Intercom('boot', base);</script>",
        [(1, "email", P)],
    ),
    "html-event-handler": (
        "page.html",
        "<button onclick=\"Intercom('update', {plan: 'pro'})\">Upgrade</button>",
        [(1, "plan", P)],
    ),
    "jinja-template": (
        "base.html",
        '<script nonce="{{ csp_nonce() }}">\n'
        "  window.intercomSettings = {\n"
        "    app_id: {{ app_id|tojson }},\n"
        "    {% if user %}user_id: {{ user.id|tojson }},{% endif %}\n"
        "  };\n</script>",
        [(4, "user_id", P)],
    ),
    "django-template-user-hash": (
        "layout.html",
        "{% load intercom %}\n<script>\n"
        "  Intercom('boot', {app_id: '{{ APP_ID }}', user_hash: '{{ request.user.hmac }}'});\n"
        "</script>",
        [(3, "user_hash", H)],
    ),
    "erb-template": (
        "app.html.erb",
        '<script nonce="<%= content_security_policy_nonce %>">\n'
        "  Intercom('update', {email: <%= current_user.email.to_json %>});\n</script>",
        [(2, "email", P)],
    ),
    "erb-tag-user-hash": (
        "show.html.erb",
        "<%= intercom_script_tag({user_hash: OpenSSL::HMAC.hexdigest('sha256', s, id)}) %>",
        [(1, "user_hash", H)],
    ),
    "handlebars-blocks": (
        "layout.hbs",
        "<script>\n  Intercom('boot', {\n    app_id: '{{appId}}',\n"
        "    {{#if user}}email: '{{user.email}}',{{else}}hide_default_launcher: true,{{/if}}\n"
        "  });\n</script>",
        [(4, "email", P)],
    ),
    "ejs-template": (
        "page.ejs",
        "<% if (user) { %><script>Intercom('update', {user_id: <%- JSON.stringify(user.id) %>})"
        "</script><% } %>",
        [(1, "user_id", P)],
    ),
    "user-hash-in-markup-and-template-tags": (
        "base.html",
        '<div id="ic" data-user-hash="{{ intercom_user_hash }}"></div>\n<p>{{ user.email }}</p>',
        [(1, "user_hash", H), (1, "user_hash", H)],
    ),
    "sdk-dynamic-import": (
        "lazy.js",
        "const sdk = await import('@intercom/messenger-js-sdk');\nsdk.default({app_id, user_id});",
        [(2, "user_id", P)],
    ),
    "js-erb": (
        "settings.js.erb",
        "Intercom('update', {plan: <%= @plan.to_json %>});",
        [(1, "plan", P)],
    ),
    "vue-script-setup-ts": (
        "Help.vue",
        '<template><p>{{ title }}</p></template>\n<script setup lang="ts">\n'
        "const ic = (window as any).Intercom;\n"
        "ic('update', { teammates: count.value });\n</script>",
        [(4, "teammates", P)],
    ),
    "user-hash-anywhere": (
        "auth.js",
        "const user_hash = await fetchHash();\nwindow.intercomSettings = {app_id};\n"
        "window.intercomSettings['user_hash'] = user_hash;",
        [(1, "user_hash", H), (3, "user_hash", H), (3, "user_hash", H)],
    ),
    "suppression-without-reason": (
        "a.js",
        "Intercom('update', {plan}); // lint-frontend: ignore",
        [(1, "", S), (1, "plan", P)],
    ),
    "suppression-unknown-rule": (
        "a.js",
        "// lint-frontend: ignore[no-such-rule] reviewed by security\nIntercom('update', {plan});",
        [(1, "", S), (2, "plan", P)],
    ),
    "suppression-for-another-rule": (
        "a.js",
        "Intercom('update', {plan}); // lint-frontend: ignore[user-hash] migrating",
        [(1, "plan", P)],
    ),
}

SAFE: dict[str, Row] = {
    "jwt-only-boot": (
        "a.js",
        "Intercom('boot', {api_base, app_id, intercom_user_jwt: token});",
        [],
    ),
    "update-with-jwt-and-unprotected": (
        "a.js",
        "Intercom('update', {intercom_user_jwt: fresh, color: 'red', custom_attributes: {tier}});",
        [],
    ),
    "key-in-string-comment-regex": (
        "a.js",
        "// Intercom('boot', {user_id: 1})\nconst s = \"Intercom('update', {email: 1})\";\n"
        "const r = /{email: 1}/g, q = a / b / 2;",
        [],
    ),
    "key-in-template-text": ("a.js", "const t = `Intercom('update', {user_id: ${id}})`;", []),
    "object-not-passed": ("a.js", "const profile = { user_id: 1, email };\nsend(profile);", []),
    "track-event-metadata": ("a.js", "Intercom('trackEvent', 'ordered', {email: 'x'});", []),
    "other-method": ("a.js", "Intercom('showNewMessage', {email: 'x'});", []),
    "nested-not-custom-attributes": ("a.js", "Intercom('boot', {company: {email: 1}});", []),
    "unrelated-update-function": (
        "a.js",
        "import { update } from './store';\nupdate({email, user_id});",
        [],
    ),
    "unrelated-boot-method": ("a.js", "app.boot({user_id: 1});\nserver.update({email});", []),
    "sdk-jwt-only": (
        "app.ts",
        "import Intercom, { update } from '@intercom/messenger-js-sdk';\n"
        "Intercom({ app_id: 'abc', intercom_user_jwt: token });\nupdate({ intercom_user_jwt: t });",
        [],
    ),
    "react-unknown-top-level-key-dropped": (
        "Help.tsx",
        "import { useIntercom } from 'react-use-intercom';\nconst { boot } = useIntercom();\n"
        "boot({ intercomUserJwt: jwt, user_id: 1, plan: 'x' });",
        [],
    ),
    "react-company-attributes": (
        "Help.tsx",
        "import { useIntercom } from 'react-use-intercom';\nconst { update } = useIntercom();\n"
        "update({ company: { companyId: 'c', customAttributes: { plan: 'x' } } });",
        [],
    ),
    "html-json-data-block": (
        "page.html",
        '<script type="application/json">{"user_id": 1, "user": "x"}</script>\n'
        "<p>Intercom('boot', {email: 1})</p>",
        [],
    ),
    "html-commented-out-script": (
        "page.html",
        "<!-- <script>Intercom('boot', {email: e, user_hash: h})</script> -->",
        [],
    ),
    "template-comment": ("base.html", "{# user_hash removed in 2025, see docs #}", []),
    "array-of-key-names": (
        "guard.js",
        'var ALWAYS_PROTECTED = ["user_id", "email", "user_hash"];\nconsole.log("user_hash");',
        [],
    ),
    "suppressed-with-reason": (
        "a.js",
        "Intercom('update', {plan}); // lint-frontend: ignore[protected-key-in-clear] plan is "
        "public pricing, not signed",
        [],
    ),
    "suppressed-next-line": (
        "a.js",
        "// lint-frontend: ignore -- legacy page, removed in JIRA-12\nIntercom('boot', {email});",
        [],
    ),
    "suppressed-in-template": (
        "base.html",
        "<script>\n{# lint-frontend: ignore[user-hash] until the JWT rollout ends #}\n"
        "Intercom('boot', {user_hash: '{{ h }}'});\n</script>",
        [],
    ),
    "official-snippet-reattach": (
        "snippet.js",
        "(function(){var w=window;var ic=w.Intercom;if(typeof ic==='function'){"
        "ic('reattach_activator');ic('update',w.intercomSettings);}})();",
        [],
    ),
    "shutdown-and-show": (
        "a.js",
        "import { shutdown, show } from '@intercom/messenger-js-sdk';\nshutdown({email});\n"
        "show({user_id: 1});",
        [],
    ),
    "mark-inside-a-string-is-no-suppression": (
        "a.js",
        "const doc = 'lint-frontend: ignore';",
        [],
    ),
}


@pytest.mark.parametrize("row", sorted(INSECURE), ids=str)
def test_insecure_snippets_are_found(row: str) -> None:
    name, source, expected = INSECURE[row]
    findings = scan_text(textwrap.dedent(source), name, KEYS)
    assert sorted((f.line, f.key, f.rule) for f in findings) == sorted(expected)


@pytest.mark.parametrize("row", sorted(SAFE), ids=str)
def test_safe_snippets_stay_clean(row: str) -> None:
    name, source, expected = SAFE[row]
    findings = scan_text(textwrap.dedent(source), name, KEYS)
    assert [str(f) for f in findings] == expected


def test_the_table_is_large_enough() -> None:
    assert len(INSECURE) + len(SAFE) >= 40
    assert len(INSECURE) >= 20 and len(SAFE) >= 20
