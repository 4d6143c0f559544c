// Cancellation for pending waits (QuickJS has no AbortController). Handlers
// run synchronously inside cancel(), so a wait can unwatch its fd before
// anyone closes it.

export class CancelledError extends Error {
  readonly reason: string
  constructor(reason: string) {
    super(`cancelled: ${reason}`)
    this.name = 'CancelledError'
    this.reason = reason
  }
}

type Handler = (reason: string) => void

export class Cancel {
  private why: string | undefined
  private handlers = new Set<Handler>()
  private detach: () => void = () => {}

  /** With a parent, this is cancelled (same reason) when the parent is. */
  constructor(parent?: Cancel) {
    if (parent) this.detach = parent.onCancel((reason) => this.cancel(reason))
  }

  get cancelled(): boolean {
    return this.why !== undefined
  }

  /** The first reason given to cancel(), if any. */
  get reason(): string | undefined {
    return this.why
  }

  /** Runs the handlers once; later calls do nothing. */
  cancel(reason: string): void {
    if (this.why !== undefined) return
    this.why = reason
    const handlers = [...this.handlers]
    this.handlers.clear()
    this.detach()
    for (const h of handlers) h(reason)
  }

  /** Call `h` on cancel (at once if already cancelled); returns an unsubscribe function. */
  onCancel(h: Handler): () => void {
    if (this.why !== undefined) {
      h(this.why)
      return () => {}
    }
    this.handlers.add(h)
    return () => this.handlers.delete(h)
  }

  /** Forget the handlers and the parent link once the guarded work is over. */
  release(): void {
    this.detach()
    this.detach = () => {}
    this.handlers.clear()
  }

  throwIfCancelled(): void {
    if (this.why !== undefined) throw new CancelledError(this.why)
  }
}
