"""The embedded demo: Pete, a small product with local accounts, beside the identity service.

`identity-service demo` (`make run`) serves both from one origin so a newcomer
can watch the whole flow in a browser: log in to Pete (argon2-hashed accounts
in `<instance>/demo.db`), Pete's Flask session cookie authenticates the token
request, the service signs the user's profile row into a Messenger JWT, and a
local stand-in for Intercom's widget shows exactly what Intercom would receive,
including what messenger.js strips from insecure client-side updates.

- `database`: schema, seed, argon2 password checks
- `product`: Pete's Flask app and the one-origin WSGI app (`create_demo_app`)
- `idp`: the development-only identity provider, so bearer auth can be tried locally
- `cli`: the `demo` and `demo-token` click commands
"""
