// A product page's code with Intercom's official npm package, as its README shows it.
// messenger.js was started before this runs (the page's script tag or an import of
// messenger.mjs); the test calls window.sdk.* as the product's code would.
import Intercom, * as sdk from "@intercom/messenger-js-sdk";

window.sdk = { Intercom, ...sdk };
