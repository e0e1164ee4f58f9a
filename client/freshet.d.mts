// Types for the ES module form of the freshet browser client (freshet.mjs): the API of
// index.d.ts as the default export and as named exports.
import freshet = require('./index.js');

export default freshet;
export type Transport = freshet.Transport;
export type State = freshet.State;
export type FreshetEvent = freshet.FreshetEvent;
export type StateInfo = freshet.StateInfo;
export type GapInfo = freshet.GapInfo;
export type Backoff = freshet.Backoff;
export type Options = freshet.Options;
export type Stats = freshet.Stats;
export type Connection = freshet.Connection;
export declare const Connection: typeof freshet.Connection;
export declare const connect: typeof freshet.connect;
export declare const version: typeof freshet.version;
export declare const states: typeof freshet.states;
