// Types for polysocket.js: PolySocket has the WebSocket API, plus its
// options and install mode. Events are plain objects carrying what the
// WebSocket events carry (type and target; data for 'message'; code,
// reason and wasClean for 'close'), typed here as the DOM's events so
// that code written for WebSocket compiles unchanged.

/** Options of a PolySocket (and the defaults of PolySocket.install). */
export interface PolySocketOptions {
  /**
   * The router's base URL, e.g. "https://ps.example.com". Default: the
   * origin a script tag loaded polysocket.js from; none when it came
   * through an import, so give it then.
   */
  router?: string;
  /** The token the router checks for this target. */
  token?: string;
  /** Skip the native WebSocket and use the relay at once. */
  forcePolyfill?: boolean;
  /** Milliseconds (default 5000) the native WebSocket may take to open, and the relay session host to first answer. */
  connectTimeout?: number;
  /** false: do not remember, per page session and origin, that the native path failed. */
  rememberFallback?: boolean;
}

/** Events a PolySocket fires, by type. */
export interface PolySocketEventMap {
  open: Event;
  message: MessageEvent;
  error: Event;
  close: CloseEvent;
}

/** A constructor that makes PolySockets: PolySocket itself or what install returns. */
export interface PolySocketConstructor {
  new (url: string | URL, protocols?: string | string[], options?: PolySocketOptions): PolySocket;
  readonly prototype: PolySocket;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
}

/**
 * A WebSocket that falls back to a polysocket relay (JSONP and POST) when
 * the native WebSocket is missing or fails before opening.
 */
export declare class PolySocket {
  constructor(url: string | URL, protocols?: string | string[], options?: PolySocketOptions);

  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  /** The library's version. */
  static readonly version: string;

  /**
   * Puts PolySocket in place of window.WebSocket, so that code which
   * constructs WebSocket itself gets the fallback: new WebSocket(url,
   * protocols) becomes new PolySocket(url, protocols, defaults). The
   * native WebSocket stays in use where it works. Returns the installed
   * constructor, which can also be handed to a library as its WebSocket.
   */
  static install(defaults?: PolySocketOptions): PolySocketConstructor;
  /** Gives window.WebSocket back its native value. */
  static uninstall(): void;

  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;

  readonly url: string;
  readonly readyState: 0 | 1 | 2 | 3;
  readonly protocol: string;
  readonly extensions: string;
  readonly bufferedAmount: number;
  binaryType: BinaryType;
  /** What the socket uses now: the native WebSocket or the relay. */
  readonly transport: "" | "websocket" | "relay";

  onopen: ((this: PolySocket, ev: Event) => any) | null;
  onmessage: ((this: PolySocket, ev: MessageEvent) => any) | null;
  onerror: ((this: PolySocket, ev: Event) => any) | null;
  onclose: ((this: PolySocket, ev: CloseEvent) => any) | null;

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void;
  close(code?: number, reason?: string): void;

  addEventListener<K extends keyof PolySocketEventMap>(
    type: K,
    listener: ((this: PolySocket, ev: PolySocketEventMap[K]) => any) | { handleEvent(ev: PolySocketEventMap[K]): any },
  ): void;
  removeEventListener<K extends keyof PolySocketEventMap>(
    type: K,
    listener: ((this: PolySocket, ev: PolySocketEventMap[K]) => any) | { handleEvent(ev: PolySocketEventMap[K]): any },
  ): void;
  dispatchEvent(ev: Event): boolean;
}

export default PolySocket;

declare global {
  interface Window {
    /** Defined by the polysocket.js script. */
    PolySocket: typeof PolySocket;
  }
}
