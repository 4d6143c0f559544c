// Keeps ugate's nftables table loaded: `fw4 flush` (firewall stop, also at
// shutdown) and `nft flush ruleset` delete every table, `inet ugate` too.
// A netlink socket reports every ruleset change; after a burst of them
// settles, ugate checks that its table is still there and loads it again if
// not. Event-driven: no polling while nothing changes.

import * as native from 'ugate:native'
import type { Logger } from '../core/log.js'
import { closeQuietly, describeError } from './sockets.js'

/** Changes come in bursts (one per object of a transaction): wait for quiet. */
const SETTLE_MS = 200

/**
 * Call `restore` when a ruleset change left `table` missing. Returns a stop
 * function (call it before deleting the table on purpose).
 */
export function watchTable(table: string, restore: () => void, log: Logger): () => void {
  let fd: number
  try {
    fd = native.nftMonitor()
  } catch (e) {
    log.warn('nft-watch-unavailable', { error: describeError(e), effect: 'capture not restored after a flush' })
    return () => {}
  }
  let timer = 0
  const check = () => {
    timer = 0
    let present: boolean
    try {
      present = native.runSync(['nft', 'list', 'table', ...table.split(' ')]).code === 0
    } catch (e) {
      return log.error('nft-watch-failed', { error: describeError(e) })
    }
    if (present) return
    log.warn('capture-lost', { table, action: 'reloading it' })
    restore()
  }
  native.watch(fd, native.EV_READ, () => {
    // Drain; an ENOBUFS (the kernel dropped notifications) also means "check".
    for (;;) {
      try {
        const b = native.read(fd, 65536)
        if (b === null || b.byteLength === 0) break
      } catch {
        break
      }
    }
    if (timer === 0) timer = native.setTimeout(check, SETTLE_MS)
  })
  return () => {
    if (timer !== 0) native.clearTimeout(timer)
    closeQuietly(fd)
  }
}
