// Small fd helpers: closing that never throws (cleanup paths must not fail
// halfway) and errno names out of thrown NativeErrors.

import * as native from 'ugate:native'
import type { Cancel } from '../core/cancel.js'
import { waitReadable } from './loop.js'

/** The errno name of a NativeError ('ECONNREFUSED'), else 'EUNKNOWN'. */
export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && code !== '' ? code : 'EUNKNOWN'
}

/** 'EADDRINUSE (Address already in use)' for a NativeError, else its message. */
export function describeError(e: unknown): string {
  const errno = (e as { errno?: unknown } | null)?.errno
  if (typeof errno === 'number') return `${errorCode(e)} (${native.strerror(errno)})`
  return e instanceof Error ? e.message : String(e)
}

export function closeQuietly(fd: number): void {
  try {
    native.close(fd)
  } catch {
    // Already closed: nothing left to release.
  }
}

/** Close with a RST, so the peer sees the failure at once rather than an orderly EOF. */
export function resetQuietly(fd: number): void {
  try {
    native.reset(fd)
  } catch {
    closeQuietly(fd)
  }
}

/** Until the peer closes `fd` (or an error); bytes it sends meanwhile are read and dropped. */
export async function waitEof(fd: number, cancel: Cancel): Promise<void> {
  for (;;) {
    await waitReadable(fd, cancel)
    let chunk: ArrayBuffer | null
    try {
      chunk = native.read(fd, 4096)
    } catch {
      return
    }
    if (chunk !== null && chunk.byteLength === 0) return
  }
}
