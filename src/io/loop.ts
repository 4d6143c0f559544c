// Promise helpers over the native event loop. Every wait is one-shot: the
// watch or timer is removed when it fires or when its Cancel is cancelled,
// so an fd is never left watched by a finished wait.

import * as native from 'ugate:native'
import { type Cancel, CancelledError } from '../core/cancel.js'

/** Resolve with revents once `fd` is ready for `events` (EV_ERR/EV_HUP also wake it). */
function waitFd(fd: number, events: number, cancel?: Cancel): Promise<number> {
  return new Promise((resolve, reject) => {
    if (cancel?.cancelled) return reject(new CancelledError(cancel.reason!))
    let off = () => {}
    native.watch(fd, events, (revents) => {
      native.unwatch(fd)
      off()
      resolve(revents)
    })
    if (cancel) {
      off = cancel.onCancel((reason) => {
        native.unwatch(fd)
        reject(new CancelledError(reason))
      })
    }
  })
}

export function waitReadable(fd: number, cancel?: Cancel): Promise<number> {
  return waitFd(fd, native.EV_READ, cancel)
}

export function waitWritable(fd: number, cancel?: Cancel): Promise<number> {
  return waitFd(fd, native.EV_WRITE, cancel)
}

/** Cancel `cancel` with `reason` after `ms`; returns a function that stops the timer. */
export function cancelAfter(cancel: Cancel, ms: number, reason: string): () => void {
  const timer = native.setTimeout(() => cancel.cancel(reason), ms)
  return () => native.clearTimeout(timer)
}
