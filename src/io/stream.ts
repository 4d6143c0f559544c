// Buffered reads and writes on a socket during a handshake (SOCKS, HTTP
// request head, sniffing, upstream negotiation). Bytes are accumulated until
// a parser says a message is complete; whatever is left over when the
// handshake ends goes to the relay as initial data, so nothing read is lost.

import * as native from 'ugate:native'
import type { Cancel } from '../core/cancel.js'
import { waitReadable, waitWritable } from './loop.js'

const READ_CHUNK = 16384

/** The peer closed before the handshake was complete. */
export class EofError extends Error {
  constructor() {
    super('eof')
    this.name = 'EofError'
  }
}

/** More bytes than the handshake may take. */
export class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`)
    this.name = 'TooLargeError'
  }
}

export class HandshakeStream {
  constructor(
    readonly fd: number,
    private readonly cancel: Cancel,
    /** Bytes already read from fd by someone else (the native SOCKS handshake). */
    private data: Uint8Array = new Uint8Array(0),
  ) {}

  /** Bytes received and not consumed yet. */
  get buffered(): Uint8Array {
    return this.data
  }

  /**
   * Read at least one more byte into the buffer. Throws EofError at EOF,
   * TooLargeError when the buffer would pass `limit`, CancelledError on cancel.
   */
  async fill(limit: number, cancel: Cancel = this.cancel): Promise<void> {
    if (this.data.length >= limit) throw new TooLargeError(limit)
    for (;;) {
      cancel.throwIfCancelled()
      const chunk = native.read(this.fd, Math.min(READ_CHUNK, limit - this.data.length))
      if (chunk === null) {
        await waitReadable(this.fd, cancel)
        continue
      }
      if (chunk.byteLength === 0) throw new EofError()
      const next = new Uint8Array(this.data.length + chunk.byteLength)
      next.set(this.data)
      next.set(new Uint8Array(chunk), this.data.length)
      this.data = next
      return
    }
  }

  /** Drop the first n bytes: a parser used them. */
  consume(n: number): void {
    this.data = this.data.subarray(n)
  }

  /** Take everything buffered (the relay's initial bytes). */
  takeRest(): Uint8Array {
    const rest = this.data
    this.data = new Uint8Array(0)
    return rest
  }

  /** Write all of `bytes`, waiting while the socket is full. */
  async writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0
    while (off < bytes.length) {
      this.cancel.throwIfCancelled()
      const n = native.write(this.fd, off === 0 ? bytes : bytes.subarray(off))
      off += n
      if (n === 0) await waitWritable(this.fd, this.cancel)
    }
  }

  /**
   * Parse with `parse` until it is not 'need-more', reading as needed up to
   * `limit` buffered bytes. On 'ok' the message's bytes are consumed.
   */
  async read<R extends { status: string; consumed?: number }>(
    parse: (buf: Uint8Array) => R,
    limit: number,
  ): Promise<Exclude<R, { status: 'need-more' }>> {
    for (;;) {
      const r = parse(this.data)
      if (r.status !== 'need-more') {
        if (r.status === 'ok' && r.consumed !== undefined) this.consume(r.consumed)
        return r as Exclude<R, { status: 'need-more' }>
      }
      await this.fill(limit)
    }
  }
}
