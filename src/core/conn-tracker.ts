// Live connections, so shutdown knows what to cancel and when the last one
// is gone. A connection is "dialing" until its sockets go to the relay
// (then only the relay can end it) and is removed when done() is called.

import { Cancel } from './cancel.js'

export interface TrackedConn {
  /** Cancelled by cancelDialing() while the connection is still dialing. */
  readonly cancel: Cancel
  /** The sockets now belong to the relay. */
  relaying(): void
  /** The connection is over; calling it again does nothing. */
  done(): void
}

interface Entry {
  cancel: Cancel
  stage: 'dialing' | 'relaying'
}

export class ConnTracker {
  private live = new Set<Entry>()
  private idleWaiters: Array<() => void> = []

  /** `external`: live connections tracked elsewhere (the native forwards), counted in size. */
  constructor(private readonly external: () => number = () => 0) {}

  get size(): number {
    return this.live.size + this.external()
  }

  /** An external connection ended: wake the idle waiters if that was the last. */
  recheck(): void {
    if (this.idleWaiters.length > 0 && this.size === 0) this.notifyIdle()
  }

  get dialing(): number {
    let n = 0
    for (const e of this.live) if (e.stage === 'dialing') n++
    return n
  }

  open(): TrackedConn {
    const entry: Entry = { cancel: new Cancel(), stage: 'dialing' }
    this.live.add(entry)
    return {
      cancel: entry.cancel,
      relaying: () => {
        entry.stage = 'relaying'
      },
      done: () => {
        if (!this.live.delete(entry)) return
        entry.cancel.release()
        this.recheck()
      },
    }
  }

  /** Cancel every connection still dialing; each ends through its own done(). */
  cancelDialing(reason: string): void {
    for (const e of [...this.live]) if (e.stage === 'dialing') e.cancel.cancel(reason)
  }

  /** Run `cb` once when no connection is live: at once if none is now. */
  onIdle(cb: () => void): void {
    if (this.size === 0) cb()
    else this.idleWaiters.push(cb)
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters
    this.idleWaiters = []
    for (const w of waiters) w()
  }
}
