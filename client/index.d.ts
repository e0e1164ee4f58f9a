// Types for the freshet browser client (freshet.js, freshet.mjs). Reference: docs/CLIENT.md.
// This file describes the CommonJS form (`require('freshet')`: the API object itself);
// freshet.d.mts describes the ES module (the same API as default and named exports).

declare namespace freshet {
  type Transport = 'sse' | 'poll' | 'ws';
  type State = 'connecting' | 'active' | 'reconnecting' | 'closed';

  /** One event, whatever the transport delivered it. */
  interface FreshetEvent {
    /** `<ms>-<seq>`, or `v1…` holding every topic's position for a stream of several. */
    id: string;
    /** The event name; `"message"` for an unnamed event. */
    event: string;
    /** The data parsed as JSON when it parses, else the text. */
    data: unknown;
    /** The data as text, as EventSource gives it. */
    text: string;
    /** The topic (WebSocket only). */
    topic?: string;
    transport: Transport;
  }

  interface StateInfo {
    transport: Transport;
    previous: State | null;
    reason?: string;
    attempt?: number;
    delay?: number;
    status?: number;
    error?: string;
    code?: number;
  }

  /** The server could not deliver everything: the page should fetch its state again. */
  interface GapInfo {
    type: 'reset' | 'dropped';
    transport: Transport;
    /** reset: the position the stream goes on from, or null when it restarts from now. */
    id?: string | null;
    /** reset: the id that could not be resumed. */
    lastEventId?: string | null;
    status?: number;
    reason?: string;
    /** dropped: events skipped since the last notice, and the counts by priority. */
    dropped?: number;
    total?: Record<string, number>;
  }

  interface Backoff {
    base?: number;
    cap?: number;
    jitter?: number;
    healthy?: number;
  }

  interface Options {
    transport?: 'auto' | Transport;
    lastEventId?: string | null;
    backoff?: Backoff;
    fallbackAfter?: number;
    bufferedTimeout?: number;
    pollTimeout?: number;
    probeTimeout?: number;
    withCredentials?: boolean;
    /** Named events to receive besides `message`: names, or `{name: handler}`. */
    events?: string[] | Record<string, (ev: FreshetEvent) => void>;
    onEvent?(this: Connection, ev: FreshetEvent): void;
    onState?(this: Connection, state: State, info: StateInfo): void;
    onGap?(this: Connection, info: GapInfo): void;
    /** WebSocket only: replies from the route's message hook, pongs, unmatched errors. */
    onMessage?(this: Connection, msg: any): void;
  }

  interface Stats {
    events: number;
    duplicates: number;
    reconnects: number;
    gaps: number;
    fallbacks: number;
    pollTimeouts: number;
  }

  class Connection {
    constructor(url: string | (() => string), options?: Options);
    readonly url: string | (() => string);
    readonly options: Options;
    lastEventId: string | null;
    readonly state: State;
    readonly transport: Transport;
    readonly stats: Stats;
    /** Also delivers events named `name` to `handler`; returns a function that removes it. */
    on(name: string, handler: (ev: FreshetEvent) => void): () => void;
    close(): void;
    /** WebSocket only: one JSON message to the route's message hook. */
    send(message: unknown): Promise<void>;
    /** WebSocket only: resolves with the stream's topic list. */
    subscribe(topics: string | string[]): Promise<string[]>;
    unsubscribe(topics: string | string[]): Promise<string[]>;
  }

  /** Opens a stream; the first onState call comes after connect has returned. */
  function connect(url: string | (() => string), options?: Options): Connection;

  /** The client's protocol version, "1". */
  const version: string;
  const states: State[];
}

export = freshet;
