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
      // The signature says INT32 (a TCP connection, as first registered); a UDP flow's "udp-N" comes as a string.
      args: { id: ARG.INT32 },
      call: (args) => {
        const ref = connRefOf(args.id)
        if (ref === null) return STATUS.INVALID_ARGUMENT
        return closeConn(ctx, ref) ? { closed: args.id! } : STATUS.NOT_FOUND
      },
    },
  }
}
