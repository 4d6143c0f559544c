// The ubus object `ugate`: its methods and their argument signatures
// (`ubus -v list ugate`). status and connections answer what the admin
// socket answers; reload is SIGHUP; close ends one connection (id 17) or UDP flow ("udp-17").

import { ARG } from '../core/ubus/client.js'
import { STATUS } from '../core/ubus/message.js'
import { type ListenerView, closeConn, connRefOf, connectionsView, statusView } from './admin.js'
import type { GatewayContext } from './session.js'
import type { JsonObject, UbusMethod } from './ubus.js'

export function ugateMethods(
  ctx: GatewayContext,
  listeners: ListenerView,
  reload: () => void,
): Record<string, UbusMethod> {
  return {
    status: { args: {}, call: () => statusView(ctx, listeners) as unknown as JsonObject },
    connections: { args: {}, call: () => connectionsView(ctx) as unknown as JsonObject },
    reload: {
      args: {},
      call: () => {
        reload()
        return {}
      },
    },
    close: {
      // Every id can be written as a string ("17", "udp-17"). The signature only informs (ubusd, the
      // CLI and uhttpd pass any type through; only an object's owner checks): an integer works too.
      args: { id: ARG.STRING },
      call: (args) => {
        const ref = connRefOf(args.id)
        if (ref === null) return STATUS.INVALID_ARGUMENT
        return closeConn(ctx, ref) ? { closed: args.id! } : STATUS.NOT_FOUND
      },
    },
  }
}
