// A small TypeScript user of the polysocket package, type-checked by
// client/npm_test.go with tsc --noEmit against the packed package.
import PolySocket, { PolySocket as Named, type PolySocketOptions, type PolySocketConstructor } from "polysocket";

const opts: PolySocketOptions = { router: "https://ps.example.com", token: "app-prod" };
const ws = new PolySocket("wss://api.example.com/live", ["chat.v2"], opts);
ws.binaryType = "arraybuffer";
ws.onopen = () => ws.send("hello");
ws.onmessage = (e: MessageEvent) => console.log(e.data);
ws.addEventListener("close", (e) => console.log(e.code, e.reason, e.wasClean));
ws.send(new Uint8Array([1, 2, 3]));
ws.send(new Blob(["x"]));
if (ws.readyState === PolySocket.OPEN && ws.transport === "relay") {
  ws.close(4000, "bye");
}
const same: typeof PolySocket = Named;

// Install mode: the constructor fits where a WebSocket constructor goes.
const Installed: PolySocketConstructor = PolySocket.install({ token: "app-prod", connectTimeout: 3000, rememberFallback: false });
function takesWebSocketCtor(C: new (url: string, protocols?: string | string[]) => { send(d: string): void; close(): void }) {
  return new C("wss://api.example.com/live");
}
takesWebSocketCtor(Installed);
takesWebSocketCtor(PolySocket);
const viaWindow: typeof PolySocket = window.PolySocket;
PolySocket.uninstall();

// @ts-expect-error: the options are typed, a misspelt one is refused.
new PolySocket("wss://api.example.com/live", [], { tokn: "x" });
// @ts-expect-error: send takes no numbers.
ws.send(42);

export { same, viaWindow };
