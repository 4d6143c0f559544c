// The config `ugate run` uses with neither --config nor --forward: a mixed
// SOCKS4/4a/5 + HTTP proxy on loopback, routing everything direct, capture
// off. Safe anywhere: nothing outside the machine can reach it.

/** A fresh copy each call, in the JSON shape, so it passes the same validator as files. */
export function defaultConfigJson(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    relay: { splice: true },
    listeners: [{ name: 'default', type: 'mixed', listen: '127.0.0.1:1080' }],
  }
}
