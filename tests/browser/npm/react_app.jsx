// A React product with react-use-intercom, wired to messenger.js as docs/embedding.md
// says: messenger.mjs vendored and bundled, started once the user is known, and
// react-use-intercom's hooks used for everything else. The test reads and drives it
// through window.app.
import { useEffect } from "react";
import { createRoot } from "react-dom/client";
import { IntercomProvider, useIntercom } from "react-use-intercom";
import { startMessenger } from "./messenger.mjs";

const MESSENGER = window.MESSENGER_OPTIONS; // what the docs' constant holds, per test

function MessengerSession() {
  const intercom = useIntercom();

  useEffect(() => {
    const messenger = startMessenger(MESSENGER);
    window.messenger = messenger;
    // react-use-intercom's hooks refuse to run until its boot(): boot it with no
    // identity once messenger.js has booted the identified Messenger (the guard adds
    // the JWT to its boot and to every update).
    messenger.ready.then((state) => {
      if (state === "identified") {
        intercom.boot();
      }
    });
    return () => messenger.logout();
  }, []);

  window.app = intercom;
  return null;
}

createRoot(document.getElementById("root")).render(
  // shouldInitialize={false}: messenger.js loads the widget (its widgetUrl, its nonce).
  <IntercomProvider appId={MESSENGER.appId} apiBase={MESSENGER.apiBase} shouldInitialize={false}>
    <MessengerSession />
  </IntercomProvider>
);
