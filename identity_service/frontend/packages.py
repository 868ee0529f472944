"""The npm packages that hand settings to the Messenger, as their published code does it.

Read from the packages themselves (`@intercom/messenger-js-sdk` 0.0.20,
`react-use-intercom` 5.8.0, both from the npm registry):

- `@intercom/messenger-js-sdk`: the default export and the named export
  `Intercom` put their argument (less `region` and `widgetUrl`) into
  `window.intercomSettings` and boot; `boot(arg)` and `update(arg)` call
  `window.Intercom('boot' | 'update', arg)`. Keys are Intercom's own
  (`user_id`, `user_hash`, custom attributes at the top level).
- `react-use-intercom`: `useIntercom()` returns `{boot, update, ...}`;
  `<IntercomProvider autoBoot autoBootProps={...}>` boots with its props.
  Their keys are camelCase and mapped to Intercom's (`userId` -> `user_id`,
  `userHash` -> `user_hash`); a key the package does not know is dropped;
  the keys of `customAttributes` are sent as written, at the top level.
"""

from __future__ import annotations

SDK_MODULE = "@intercom/messenger-js-sdk"
REACT_MODULE = "react-use-intercom"

# SDK export -> what calling it does.
SDK_INIT = "init"
SDK_EXPORTS = {"default": SDK_INIT, "Intercom": SDK_INIT, "boot": "boot", "update": "update"}

REACT_HOOK = "useIntercom"
REACT_PROVIDER = "IntercomProvider"
REACT_BOOT_PROP = "autoBootProps"
REACT_METHODS = frozenset({"boot", "update"})
REACT_CUSTOM_ATTRIBUTES = "customAttributes"

# react-use-intercom's mapping of its props to Intercom's keys (its `mapDataToRawData`:
# the messenger settings and the user's data); `customAttributes` is spread as written.
REACT_KEYS = {
    "customLauncherSelector": "custom_launcher_selector",
    "alignment": "alignment",
    "verticalPadding": "vertical_padding",
    "horizontalPadding": "horizontal_padding",
    "zIndex": "z_index",
    "hideDefaultLauncher": "hide_default_launcher",
    "sessionDuration": "session_duration",
    "actionColor": "action_color",
    "backgroundColor": "background_color",
    "linkColor": "link_color",
    "themeMode": "theme_mode",
    "messengerStyleId": "messenger_style_id",
    "hideNotifications": "hide_notifications",
    "email": "email",
    "userId": "user_id",
    "createdAt": "created_at",
    "name": "name",
    "phone": "phone",
    "lastRequestAt": "last_request_at",
    "unsubscribedFromEmails": "unsubscribed_from_emails",
    "languageOverride": "language_override",
    "utmCampaign": "utm_campaign",
    "utmContent": "utm_content",
    "utmMedium": "utm_medium",
    "utmSource": "utm_source",
    "utmTerm": "utm_term",
    "avatar": "avatar",
    "userHash": "user_hash",
    "company": "company",
    "companies": "companies",
    "intercomUserJwt": "intercom_user_jwt",
    "pageTitle": "page_title",
    "authTokens": "auth_tokens",
}

# Intercom's classic API: the methods whose object sets user attributes.
CLASSIC_FUNCTION = "Intercom"
CLASSIC_SETTINGS = "intercomSettings"
CLASSIC_METHODS = frozenset({"boot", "update"})
CLASSIC_CUSTOM_ATTRIBUTES = "custom_attributes"
