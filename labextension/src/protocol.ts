/**
 * The `timetravel` comm protocol v1, as a typed request/reply client.
 *
 * This module knows nothing of JupyterLab: it talks to anything shaped like a
 * comm (`send`, `onMsg`, `onClose`), so it is unit-tested in plain node.
 * Op names and fields follow docs/protocol.md (DESIGN.md "Comm protocol v1");
 * their types are generated into wire.ts and never renamed here, only read.
 */

import type { EventName, Op, Ops } from './wire';

// The wire format is generated into wire.ts from the kernel's Python definitions (import other
// shapes from there); these are the names the rest of the extension uses for the generated ones.
export { COMM_TARGET as TARGET_NAME } from './wire';
export type {
  CheckoutReply as ICheckoutResult,
  CommitJSON as ICommit,
  DiffReply as IDiffResult,
  RebuildPlanJSON as IRebuildPlan,
  RebuildReply as IRebuildResult,
  StatusReply as IStatusResult,
  VarJSON as IVarInfo,
  VersionJSON as IVersionInfo
} from './wire';

/**
 * An unasked message from the kernel. Fields beyond `event` are read
 * defensively: the protocol may add fields within v1.
 */
export interface IEvent {
  event: EventName | string;
  [key: string]: unknown;
}

/** The smallest comm surface the client needs (IComm satisfies it). */
export interface ICommLike {
  send(data: any): unknown;
  onMsg: (msg: any) => void;
  onClose: (msg: any) => void;
  close(data?: any): unknown;
}

/** An error reply, or a failure of the transport, as an Error. */
export class ProtocolError extends Error {
  /** The protocol error code (`nothing-to-undo`, `busy`, ...) or a local one. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

interface IPending {
  resolve: (value: any) => void;
  reject: (reason: ProtocolError) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Default reply timeouts in ms; a checkout loads data and may take longer. */
export const DEFAULT_TIMEOUTS: { [op: string]: number } = {
  checkout: 120_000,
  undo: 120_000,
  redo: 120_000,
  restore: 120_000,
  rebuild: 900_000,
  get: 120_000,
  diff: 60_000,
  default: 15_000
};

/**
 * One open comm: sends requests with fresh ids, matches replies, forwards events.
 *
 * Replies are matched by `id` only, so several requests may be in flight.
 * When the comm closes (kernel restart, or the kernel has no `timetravel`
 * target) every pending request is rejected with code `comm-closed`.
 */
export class TimeTravelClient {
  constructor(comm: ICommLike, options: { timeouts?: { [op: string]: number } } = {}) {
    this._comm = comm;
    this._timeouts = { ...DEFAULT_TIMEOUTS, ...(options.timeouts ?? {}) };
    comm.onMsg = msg => this._handle(msg.content.data);
    comm.onClose = msg => this._closed(msg?.content?.data);
  }

  /** Whether the comm is still usable. */
  get isOpen(): boolean {
    return !this._isClosed;
  }

  /** Called for every event the kernel sends on this comm. */
  onEvent: (event: IEvent) => void = () => undefined;

  /** Called once when the comm closes, with the reason if the kernel gave one. */
  onClosed: (reason: string) => void = () => undefined;

  /** Send one request and wait for its reply. */
  request<K extends Op>(op: K, params?: Ops[K]['params']): Promise<Ops[K]['result']> {
    if (this._isClosed) {
      return Promise.reject(new ProtocolError('comm-closed', 'The time-travel comm is closed.'));
    }
    const id = `${this._prefix}-${++this._counter}`;
    const timeout = this._timeouts[op] ?? this._timeouts.default;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ProtocolError('timeout', `The kernel did not answer "${op}" within ${timeout / 1000} s.`));
      }, timeout);
      this._pending.set(id, { resolve, reject, timer });
      try {
        this._comm.send({ ...(params ?? {}), id, op });
      } catch (err) {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(new ProtocolError('send-failed', String(err)));
      }
    });
  }

  /** Close the comm and fail what is pending. */
  dispose(): void {
    if (this._isClosed) {
      return;
    }
    try {
      this._comm.close();
    } catch {
      // The kernel may already be gone; closing is best effort.
    }
    this._closed('disposed');
  }

  /** Route one incoming message: a reply (has `id` and `ok`) or an event. */
  private _handle(data: any): void {
    if (data === null || typeof data !== 'object') {
      return;
    }
    if (typeof data.event === 'string') {
      this.onEvent(data as IEvent);
      return;
    }
    const pending = typeof data.id === 'string' ? this._pending.get(data.id) : undefined;
    if (!pending) {
      return; // A late reply after a timeout, or not ours.
    }
    this._pending.delete(data.id);
    clearTimeout(pending.timer);
    if (data.ok === true) {
      pending.resolve(data.result ?? {});
    } else {
      const error = data.error ?? {};
      pending.reject(
        new ProtocolError(String(error.code ?? 'error'), String(error.message ?? 'The kernel refused the request.'))
      );
    }
  }

  private _closed(data: any): void {
    if (this._isClosed) {
      return;
    }
    this._isClosed = true;
    const reason =
      data && typeof data === 'object' && typeof data.reason === 'string' ? data.reason : 'closed';
    for (const [, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new ProtocolError('comm-closed', 'The time-travel comm closed before the kernel replied.'));
    }
    this._pending.clear();
    this.onClosed(reason);
  }

  private _comm: ICommLike;
  private _timeouts: { [op: string]: number };
  private _pending = new Map<string, IPending>();
  private _counter = 0;
  private _prefix = Math.random().toString(36).slice(2, 10);
  private _isClosed = false;
}
