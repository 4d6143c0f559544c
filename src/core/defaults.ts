// The config `ugate run` uses with neither --config nor --forward: forward a
// local port to an iperf3 server, the quickest way to try (and benchmark) it.

/** A fresh copy each call, in the JSON shape, so it passes the same validator as files. */
export function defaultConfigJson(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    relay: { splice: true },
    listeners: [{ name: 'default', type: 'forward', listen: '127.0.0.1:6000', target: '127.0.0.1:5201' }],
  }
}
