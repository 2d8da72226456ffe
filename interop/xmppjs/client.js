// xmppd interop: @xmpp/client (xmpp.js, from npm) logs in over XMPP over
// WebSocket (RFC 7395), sends a chat message to a peer, and waits for the
// peer's reply. Prints one JSON line (the last line of stdout) and exits 0
// when everything went through, 1 otherwise.
//
//   node client.js SERVICE DOMAIN USERNAME PASSWORD RESOURCE PEER BODY [TIMEOUT_MS]
//
// SERVICE is wss://host:port/xmpp-websocket. Certificate checks are for the
// caller to relax (NODE_TLS_REJECT_UNAUTHORIZED=0 against a test server).

// Node 20 has WebSocket (undici's) only behind --experimental-websocket,
// Node 18 has neither it nor a global WebCrypto: fill them in from the ws
// package and node:crypto. XMPPJS_WEBSOCKET=ws uses ws even when Node has
// its own.
let websocketImpl = "node";
if (
  typeof globalThis.WebSocket === "undefined" ||
  process.env.XMPPJS_WEBSOCKET === "ws"
) {
  globalThis.WebSocket = (await import("ws")).WebSocket;
  websocketImpl = "ws";
}
if (typeof globalThis.crypto === "undefined") {
  globalThis.crypto = (await import("node:crypto")).webcrypto;
}

const { client, xml } = await import("@xmpp/client");

const [service, domain, username, password, resource, peer, body, timeoutArg] =
  process.argv.slice(2);
if (!peer || body === undefined) {
  console.error(
    "usage: node client.js SERVICE DOMAIN USERNAME PASSWORD RESOURCE PEER BODY [TIMEOUT_MS]",
  );
  process.exit(2);
}

const result = {
  websocket: websocketImpl, // "node" (undici's) or "ws" (the npm package)
  online: null, // full JID after resource binding
  secure: null, // whether xmpp.js considered the WebSocket secure
  offered: [], // SASL mechanisms the server offered
  mechanism: null, // the one xmpp.js chose
  saslSuccess: false,
  sent: false,
  reply: null, // {from, body} of the peer's answer
  errors: [],
};

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  console.log(JSON.stringify(result));
  const stop = xmpp.stop().catch(() => {});
  // Don't wait forever for a clean close.
  Promise.race([stop, new Promise((r) => setTimeout(r, 2000))]).then(() =>
    process.exit(code),
  );
}

const timer = setTimeout(
  () => {
    result.errors.push("timeout");
    finish(1);
  },
  Number(timeoutArg) || 20000,
);

const xmpp = client({ service, domain, username, password, resource });
// The test drives one connection: no reconnecting after a failure.
xmpp.reconnect.stop();

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
xmpp.on("element", (el) => {
  if (el.is("features", "http://etherx.jabber.org/streams")) {
    const mechs = el.getChild("mechanisms", NS_SASL);
    if (mechs) {
      result.offered = mechs.getChildren("mechanism").map((m) => m.text());
    }
  } else if (el.is("success", NS_SASL)) {
    result.saslSuccess = true;
  }
});
xmpp.on("send", (el) => {
  if (el.is("auth", NS_SASL)) {
    result.mechanism = el.attrs.mechanism;
  }
});

xmpp.on("error", (err) => {
  result.errors.push(String(err?.stack || err));
  clearTimeout(timer);
  finish(1);
});

xmpp.on("stanza", (stanza) => {
  if (!stanza.is("message")) return;
  if (stanza.attrs.type === "error") {
    result.errors.push("message error: " + stanza.toString());
    clearTimeout(timer);
    finish(1);
    return;
  }
  const text = stanza.getChildText("body");
  if (text === null) return;
  result.reply = { from: stanza.attrs.from, body: text };
  clearTimeout(timer);
  finish(0);
});

xmpp.on("online", async (address) => {
  result.online = address.toString();
  result.secure = xmpp.isSecure();
  try {
    await xmpp.send(xml("presence"));
    await xmpp.send(
      xml("message", { to: peer, type: "chat", id: "xmppjs-1" }, xml("body", {}, body)),
    );
    result.sent = true;
  } catch (err) {
    result.errors.push(String(err?.stack || err));
    clearTimeout(timer);
    finish(1);
  }
});

xmpp.start().catch((err) => {
  result.errors.push(String(err?.stack || err));
  clearTimeout(timer);
  finish(1);
});
