'use strict';
'require view';
'require form';
'require uci';
'require rpc';
'require ugate as ug';

/*
 * ugate settings: the uci file /etc/config/ugate.
 *
 * The checks themselves live in resources/ugate.js (ug.*): each repeats
 * the daemon's own check of the same value, so a form that LuCI saves is a
 * config that `ugate check` accepts. This view builds the form and hands the
 * checks their inputs.
 *
 * Cross-field checks (unique names, listen address clashes, the capture
 * listener, mark vs. router_self) read the other fields through
 * liveValue(): the field's widget when it is on the page, else the uci
 * value (a grid row's options live in uci while another row's modal is open).
 */

const LISTENER_TYPES = [
	['mixed', _('SOCKS and HTTP proxy (mixed)')],
	['socks', _('SOCKS4/4a/5 proxy')],
	['http', _('HTTP proxy')],
	['forward', _('Port forward')],
	['redirect', _('Transparent (nftables redirect)')],
	['sni', _('TLS SNI / HTTP Host router')],
	['tproxy', _('Transparent UDP (nftables TPROXY)')],
	['dns', _('DNS server')],
	['hbone', _('HBONE mesh tunnels (mutual TLS)')]
];

/* The running gateway's status: the mesh section shows its node id. */
const callStatus = rpc.declare({
	object: 'ugate',
	method: 'status',
	expect: { '': {} }
});

/*
 * Wrap a check of one non-empty value as an option validator. Empty values
 * pass: whether an option may be empty is up to its rmempty/optional flags.
 */
function validator(check) {
	return function (section_id, value) {
		if (value == null || value === '') return true;

		return check.call(this, String(value), section_id);
	};
}

/* ---- reading other fields ------------------------------------------------------------ */

/*
 * The value of option `opt` of section `sid`: its widget's when it is on
 * the page (map.root exists once the map has rendered), else uci's.
 */
function liveValue(map, sid, opt) {
	const found = map && map.root ? map.lookupOption(opt, sid) : null;

	if (found) {
		const v = found[0].formvalue(found[1]);

		if (v != null) return v;
	}

	return uci.get('ugate', sid, opt);
}

/*
 * Every form.Flag goes through this: the daemon reads yes/no, on/off, true/false,
 * enabled/disabled too (ug.flagValue), and a Flag ticks only '1', so "yes" would
 * show unticked and saving would turn the setting off.
 */
function flag(o) {
	o.cfgvalue = function (section_id) {
		return ug.flagValue(form.Flag.prototype.cfgvalue.apply(this, arguments));
	};

	return o;
}

/*
 * The listeners or upstreams with the names the daemon gives them: the
 * `name` option, else the section's own name, else listener1, listener2, ...
 * `map` null: uci values only (before the map has rendered).
 */
/*
 * The two keep-alive options of a mesh connection (config.ts pingTiming) on
 * section s: an hbone listener's, an hbone upstream's (hbone: only for that
 * type) or a reverse tunnel's; `what` names the connection in the help text.
 */
function keepAlive(s, what, hbone) {
	[
		['ping_interval', _('Keep-alive'), _('Seconds between HTTP/2 PINGs on %s.').format(what), '10'],
		[
			'ping_timeout',
			_('Keep-alive timeout'),
			_('Seconds without an answer to a PING before %s is dead.').format(what),
			'20'
		]
	].forEach(function (d) {
		const o = s.option(form.Value, d[0], d[1], d[2]);
		o.datatype = 'ufloat';
		o.placeholder = d[3];
		o.modalonly = true;
		if (hbone) o.depends('type', 'hbone');
		o.validate = validator(function (v) {
			return ug.checkSeconds(v, d[0]);
		});
	});
}

function namedSections(map, type) {
	return uci.sections('ugate', type).map(function (s, i) {
		const name = liveValue(map, s['.name'], 'name');

		return {
			sid: s['.name'],
			name: name != null && name !== '' ? String(name) : s['.anonymous'] ? type + (i + 1) : s['.name']
		};
	});
}

/*
 * Replace an option's choices ([ key, label ] pairs, no duplicate keys).
 * Called from load(), which form.Map runs again after every save, so the
 * lists follow added and renamed listeners and upstreams.
 */
function setChoices(option, choices) {
	option.keylist = [];
	option.vallist = [];

	choices.forEach(function (c) {
		if (option.keylist.indexOf(c[0]) < 0) option.value(c[0], c[1]);
	});
}

/*
 * Option `o` (a ListValue `upstream` of a rule or a forward listener) names
 * one of the upstream sections; `first`: choices before the names (none).
 */
function upstreamRef(o, type, first) {
	o.load = function (section_id) {
		const names = namedSections(null, 'upstream').map(function (n) {
				return n.name;
			}),
			choices = first.concat(
				names.map(function (n) {
					return [n];
				})
			);

		/* a reference to a missing upstream stays visible, so that its check can report it */
		uci.sections('ugate', type).forEach(function (r) {
			if (r.upstream != null && r.upstream !== '' && names.indexOf(r.upstream) < 0)
				choices.push([r.upstream, _('%s (not configured)').format(r.upstream)]);
		});

		setChoices(this, choices);
		return this.super('load', [section_id]);
	};
	o.validate = validator(function (v) {
		const names = namedSections(this.map, 'upstream').map(function (n) {
			return n.name;
		});

		return ug.checkUpstreamRef(v, names);
	});
}

/* The names of the other sections of one type (config.ts checkUnique, upstreams). */
function otherNames(map, section_id, type) {
	return namedSections(map, type)
		.filter(function (n) {
			return n.sid !== section_id;
		})
		.map(function (n) {
			return n.name;
		});
}

/*
 * The required, unique `name` of a listener, upstream or reverse section.
 * A named section without the option (`config reverse 'vps'`) shows its
 * section name, the name the daemon gives it; saving then writes it out.
 * `others(map, section_id)`: the names it must differ from; `what` names
 * them in the error.
 */
function nameOption(s, others, what) {
	const o = s.option(form.Value, 'name', _('Name'));

	o.rmempty = false;
	o.load = function (section_id) {
		const v = uci.get('ugate', section_id, 'name'),
			sec = uci.get('ugate', section_id);

		return v == null && sec && !sec['.anonymous'] ? section_id : v;
	};
	o.validate = function (section_id, value) {
		return value == null || value === '' ? true : ug.checkName(String(value), others(this.map, section_id), what);
	};

	return o;
}

/* ---- the view ---------------------------------------------------------------------- */

return view.extend({
	load() {
		/* not running (or no ubus object): the form works without the status */
		return Promise.all([
			uci.load('ugate'),
			callStatus().catch(function () {
				return null;
			})
		]);
	},

	render(loaded) {
		const status = loaded && loaded[1];
		const m = new form.Map(
			'ugate',
			_('ugate'),
			_(
				'A tiny TCP gateway: SOCKS and HTTP proxy, port forwarding, SNI routing and transparent capture. ' +
					'Rules pick, per connection, to go direct, reject, forward or chain through an upstream proxy.'
			)
		);
		let s, o;

		/* ---- general ---- */

		s = m.section(form.NamedSection, 'main', 'ugate', _('General'));
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('limits', _('Limits and timeouts'));

		o = flag(s.taboption('general', form.Flag, 'enabled', _('Enabled')));
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'log_level', _('Log level'));
		o.value('error', _('Errors'));
		o.value('warn', _('Warnings'));
		o.value('info', _('Information'));
		o.value('debug', _('Debug'));
		o.default = 'info';

		o = flag(
			s.taboption(
				'general',
				form.Flag,
				'splice',
				_('Relay with splice()'),
				_('Relay payload inside the kernel. Turn off only to debug.')
			)
		);
		o.default = '1';
		o.rmempty = false;

		o = s.taboption(
			'general',
			form.Value,
			'mark',
			_('Firewall mark'),
			_(
				"SO_MARK of ugate's outbound connections (0 = none). Transparent capture of the router's own traffic needs a non-zero mark."
			)
		);
		o.datatype = 'uinteger';
		o.placeholder = '0';
		o.validate = function (section_id, value) {
			return ug.checkMark(
				value,
				ug.isTrue(liveValue(this.map, 'capture', 'enabled')) && ug.isTrue(liveValue(this.map, 'capture', 'router_self'))
			);
		};

		o = s.taboption(
			'general',
			form.Value,
			'admin_socket',
			_('Admin socket'),
			_(
				'Unix socket that "ugate ctl" and the status page ask, e.g. /var/run/ugate.sock. Empty = none: the status page then has nothing to show.'
			)
		);
		o.validate = validator(ug.checkSocketPath);

		o = s.taboption(
			'general',
			form.Value,
			'admin_listen',
			_('Admin HTTP address'),
			_(
				'IP:PORT of the admin HTTP API (Clash API, /metrics), e.g. 127.0.0.1:9090. Empty = off. Other than loopback needs a secret.'
			)
		);
		o.placeholder = '127.0.0.1:9090';
		o.validate = validator(function (v) {
			return ug.checkAdminListen(v, String(liveValue(this.map, 'main', 'admin_secret') || ''));
		});

		o = s.taboption(
			'general',
			form.Value,
			'admin_secret',
			_('Admin HTTP secret'),
			_('Bearer token the admin HTTP API asks for. Empty = none (loopback only).')
		);
		o.password = true;
		o.validate = validator(ug.checkSecret);

		o = s.taboption(
			'limits',
			form.Value,
			'max_connections',
			_('Max. connections'),
			_('Live connections at once, over all listeners (0 = no limit).')
		);
		o.datatype = 'uinteger';
		o.placeholder = '1024';
		o.validate = validator(function (v) {
			return ug.checkInteger(v, 0, 1000000);
		});

		o = s.taboption(
			'limits',
			form.Value,
			'max_per_source',
			_('Max. connections per client'),
			_('Live connections from one source address (0 = no limit).')
		);
		o.datatype = 'uinteger';
		o.placeholder = '256';
		o.validate = validator(function (v) {
			return ug.checkInteger(v, 0, 1000000);
		});

		const durations = [
			[
				'handshake_timeout',
				_('Handshake timeout'),
				_('Seconds a client has to finish its SOCKS or HTTP request.'),
				'10'
			],
			[
				'idle_timeout',
				_('Idle timeout'),
				_('Seconds without traffic before a connection is closed (0 = never).'),
				'900'
			],
			['connect_timeout', _('Connect timeout'), _('Seconds to wait for an outbound connection.'), '10'],
			['shutdown_grace', _('Shutdown grace'), _('Seconds live connections may finish when ugate stops.'), '5'],
			[
				'sniff_timeout',
				_('Sniff timeout'),
				_('Seconds to wait for a TLS ClientHello or HTTP request head on captured connections.'),
				'0.3'
			]
		];

		durations.forEach(function (d) {
			o = s.taboption('limits', form.Value, d[0], d[1], d[2]);
			o.datatype = 'ufloat';
			o.placeholder = d[3];
			o.validate = validator(function (v) {
				return ug.checkSeconds(v, d[0]);
			});
		});

		o = s.taboption(
			'limits',
			form.Value,
			'sniff_max_bytes',
			_('Sniff buffer'),
			_('Bytes read at most to find a TLS server name or HTTP host.')
		);
		o.datatype = 'uinteger';
		o.placeholder = '16384';
		o.validate = validator(function (v) {
			return ug.checkInteger(v, 64, 65536);
		});

		/* ---- listeners ---- */

		s = m.section(form.GridSection, 'listener', _('Listeners'), _('Where ugate accepts connections.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Listener') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		nameOption(
			s,
			function (map, section_id) {
				return otherNames(map, section_id, 'listener');
			},
			'listener'
		);

		o = s.option(form.ListValue, 'type', _('Type'));
		LISTENER_TYPES.forEach(function (t) {
			o.value(t[0], t[1]);
		});
		o.default = 'mixed';
		o.rmempty = false;

		o = s.option(
			form.Value,
			'address',
			_('Address'),
			_('IP address to listen on: 127.0.0.1, 0.0.0.0 (all IPv4), :: (all IPv6), ...')
		);
		o.datatype = 'ipaddr';
		o.placeholder = '127.0.0.1';
		o.rmempty = false;
		o.validate = validator(ug.checkListenAddress);

		o = s.option(form.Value, 'port', _('Port'), _('0 = any free port.'));
		o.datatype = 'port';
		o.rmempty = false;
		o.validate = validator(function (v, section_id) {
			const map = this.map,
				others = namedSections(map, 'listener')
					.filter(function (n) {
						return n.sid !== section_id;
					})
					.map(function (n) {
						return {
							name: n.name,
							address: liveValue(map, n.sid, 'address') || '',
							port: liveValue(map, n.sid, 'port') || ''
						};
					});

			return ug.checkListenPort(v, String(liveValue(map, section_id, 'address') || ''), others);
		});

		o = s.option(
			form.DynamicList,
			'allow',
			_('Allowed clients'),
			_(
				'Source addresses or CIDRs that may connect. Empty = loopback and private ranges (127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, fc00::/7).'
			)
		);
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(ug.checkCidr);

		o = s.option(
			form.DynamicList,
			'users',
			_('Users'),
			_('user:password entries; when set, clients must authenticate (SOCKS5 user/password, HTTP Basic).')
		);
		o.depends('type', 'mixed');
		o.depends('type', 'socks');
		o.depends('type', 'http');
		o.modalonly = true;
		o.validate = function (section_id, value) {
			return ug.checkUsers(L.toArray(this.formvalue(section_id)).map(String), value == null ? '' : String(value));
		};

		o = s.option(form.Value, 'target', _('Target'), _('HOST:PORT every connection is forwarded to.'));
		o.depends('type', 'forward');
		o.rmempty = false;
		o.modalonly = true;
		o.placeholder = '192.168.1.10:80';
		o.validate = validator(ug.checkTarget);

		o = s.option(
			form.ListValue,
			'upstream',
			_('Through upstream'),
			_('Dial the target through this upstream (a proxy, or a peer gate over HBONE); none: directly.')
		);
		o.depends('type', 'forward');
		o.modalonly = true;
		upstreamRef(o, 'listener', [['', _('none (direct)')]]);

		/* a whole-number option of one listener type, in the daemon's range */
		const typeInteger = function (name, title, description, type, datatype, placeholder, min, max) {
			o = s.option(form.Value, name, title, description);
			o.depends('type', type);
			o.datatype = datatype;
			o.placeholder = placeholder;
			o.modalonly = true;
			o.validate = validator(function (v) {
				return ug.checkInteger(v, min, max);
			});
		};

		typeInteger('tls_port', _('TLS port'), _('Port dialed for a TLS server name.'), 'sni', 'port', '443', 1, 65535);
		typeInteger(
			'http_port',
			_('HTTP port'),
			_('Port dialed for an HTTP Host without a port.'),
			'sni',
			'port',
			'80',
			1,
			65535
		);

		o = s.option(
			form.DynamicList,
			'networks',
			_('Networks'),
			_(
				'What the listener takes: udp, tcp or both. Empty = udp. With tcp it can be the capture listener: TCP captured with TPROXY instead of REDIRECT (the original destination without conntrack NAT).'
			)
		);
		o.depends('type', 'tproxy');
		o.modalonly = true;
		o.placeholder = 'udp';
		o.validate = validator(ug.checkTproxyNetwork);

		const listenerSeconds = [
			[
				'udp_idle_timeout',
				_('UDP idle timeout'),
				_('Seconds without traffic before a UDP flow (tproxy) or a SOCKS5 UDP association (socks, mixed) ends.'),
				'60',
				['tproxy', 'socks', 'mixed']
			],
			[
				'udp_dns_idle_timeout',
				_('UDP idle timeout, port 53'),
				_('Seconds without traffic before a flow to port 53 ends.'),
				'10',
				['tproxy']
			],
			['timeout', _('Query timeout'), _('Seconds to wait for an upstream resolver.'), '2', ['dns']]
		];

		listenerSeconds.forEach(function (d) {
			o = s.option(form.Value, d[0], d[1], d[2]);
			d[4].forEach(function (type) {
				o.depends('type', type);
			});
			o.datatype = 'ufloat';
			o.placeholder = d[3];
			o.modalonly = true;
			o.validate = validator(function (v) {
				return ug.checkSeconds(v, d[0]);
			});
		});

		typeInteger('max_flows', _('Max. flows'), _('UDP flows at once.'), 'tproxy', 'uinteger', '4096', 1, 1000000);

		o = s.option(
			form.DynamicList,
			'server',
			_('Upstream resolvers'),
			_(
				'IP, IP:PORT or [IPv6]:PORT (port 53 when not given); DNS over TLS: tls://NAME@IP or tls://IP, with :PORT (853 when not given). NAME (or else the IP) must be in the server certificate.'
			)
		);
		o.depends('type', 'dns');
		o.rmempty = false;
		o.modalonly = true;
		o.placeholder = '1.1.1.1';
		o.validate = validator(ug.checkDnsServer);

		o = s.option(
			form.Value,
			'ca_bundle',
			_('CA bundle'),
			_("PEM file of the CAs that tls:// resolvers' certificates must chain to (TLS 1.3 only).")
		);
		o.depends('type', 'dns');
		o.modalonly = true;
		o.placeholder = '/etc/ssl/certs/ca-certificates.crt';
		o.validate = validator(ug.checkFilePath);

		o = s.option(form.DynamicList, 'host', _('Static names'), _('"ADDRESS NAME..." lines, as in /etc/hosts.'));
		o.depends('type', 'dns');
		o.modalonly = true;
		o.placeholder = '192.168.1.20 printer.lan';
		o.validate = validator(ug.checkHostLine);

		o = s.option(
			form.DynamicList,
			'reject_address',
			_('Rejected names resolve to'),
			_('Addresses a name rejected by the rules gets (by family). Empty = NXDOMAIN.')
		);
		o.depends('type', 'dns');
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(ug.checkIp);

		typeInteger(
			'cache_size',
			_('Cache size'),
			_('Answers kept (0 = no cache).'),
			'dns',
			'uinteger',
			'4096',
			0,
			1000000
		);

		/* an hbone listener's SPIFFE id lists */
		[
			[
				'peers',
				_('Allowed peers'),
				_('SPIFFE ids that may open tunnels; others get 401. Empty = any peer of the trust domain (Mesh identity).'),
				'spiffe://cluster.local/ns/default/sa/gw-a'
			],
			[
				'reverse',
				_('Reverse tunnels from'),
				_(
					'SPIFFE ids of gates behind NAT that may keep a reverse tunnel to this listener, to be reached through it (upstreams naming them). Exact ids. Empty = none (never an open relay).'
				),
				'spiffe://cluster.local/ns/home/sa/gate-a'
			]
		].forEach(function (d) {
			o = s.option(form.DynamicList, d[0], d[1], d[2]);
			o.depends('type', 'hbone');
			o.modalonly = true;
			o.placeholder = d[3];
			o.validate = validator(ug.checkSpiffeId);
		});
		keepAlive(s, _('each reverse tunnel it holds'), true);

		o = s.option(form.Value, 'backlog', _('Backlog'), _('Pending connections the kernel queues.'));
		o.datatype = 'uinteger';
		o.placeholder = '511';
		o.modalonly = true;
		o.validate = validator(function (v) {
			return ug.checkInteger(v, 1, 65535);
		});

		/* ---- rules ---- */

		s = m.section(
			form.GridSection,
			'rule',
			_('Rules'),
			_(
				'Checked from top to bottom: the first rule that matches picks the action; no match = direct. ' +
					'A rule matches when all of its conditions hold; a list condition holds when one of its values matches.'
			)
		);
		s.anonymous = true;
		s.addremove = true;
		s.sortable = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Rule') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		o = s.option(form.Value, 'name', _('Name'));
		o.validate = validator(ug.checkRuleName);

		o = s.option(form.DynamicList, 'domain', _('Domains'), _('Host names matched exactly.'));
		o.validate = validator(ug.checkDomainName);

		o = s.option(
			form.DynamicList,
			'domain_suffix',
			_('Domain suffixes'),
			_('example.com matches example.com and every name below it.')
		);
		o.validate = validator(ug.checkDomainSuffix);

		o = s.option(form.DynamicList, 'domain_keyword', _('Domain keywords'), _('Text found anywhere in the host name.'));
		o.modalonly = true;
		o.validate = validator(ug.checkKeyword);

		o = s.option(form.DynamicList, 'dst_cidr', _('Destination addresses'), _('IPv4/IPv6 addresses or CIDRs.'));
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(ug.checkCidr);

		o = s.option(form.DynamicList, 'dst_port', _('Destination ports'), _('Ports or ranges like 8000-8080.'));
		o.datatype = 'portrange';
		o.validate = validator(ug.checkPortRange);

		o = s.option(form.DynamicList, 'src_cidr', _('Client addresses'), _('IPv4/IPv6 addresses or CIDRs.'));
		o.datatype = 'ipaddr';
		o.modalonly = true;
		o.validate = validator(ug.checkCidr);

		o = s.option(form.DynamicList, 'listener', _('Listeners'), _('Names of the listeners the connection came in on.'));
		o.load = function (section_id) {
			setChoices(
				this,
				namedSections(null, 'listener').map(function (n) {
					return [n.name];
				})
			);
			return this.super('load', [section_id]);
		};
		o.modalonly = true;
		o.validate = validator(ug.checkListenerName);

		o = s.option(form.MultiValue, 'proto', _('Protocols'), _('The protocol sniffed on the connection.'));
		o.value('tls', 'TLS');
		o.value('http', 'HTTP/1');
		o.value('h2', 'HTTP/2');
		o.value('unknown', _('Unknown'));
		o.modalonly = true;
		o.validate = validator(ug.checkProto);

		o = s.option(form.MultiValue, 'network', _('Networks'), _('TCP connections or UDP flows.'));
		o.value('tcp', 'TCP');
		o.value('udp', 'UDP');
		o.modalonly = true;
		o.validate = validator(ug.checkNetwork);

		/* the peer of a stream from an hbone listener; never matches other connections */
		[
			[
				'src_identity',
				_('Mesh peer identities'),
				_('SPIFFE ids of the peer (streams from an HBONE listener only).'),
				ug.checkSpiffeId
			],
			[
				'src_trust_domain',
				_('Mesh peer trust domains'),
				_("The trust domain of the peer's SPIFFE id."),
				ug.checkTrustDomain
			],
			['src_node', _('Mesh peer node ids'), _("52 characters, as 'ugate identity show' prints them."), ug.checkNodeId]
		].forEach(function (c) {
			o = s.option(form.DynamicList, c[0], c[1], c[2]);
			o.modalonly = true;
			o.validate = validator(c[3]);
		});

		o = s.option(form.ListValue, 'action', _('Action'));
		o.value('direct', _('Direct'));
		o.value('reject', _('Reject'));
		o.value('upstream', _('Upstream proxy'));
		o.value('forward', _('Forward to'));
		/* routing by node name (docs/mesh.md): only a rule with this action routes names to nodes */
		o.value('mesh', _('Mesh node (the host names it)'));
		o.default = 'direct';
		o.rmempty = false;

		o = s.option(form.ListValue, 'upstream', _('Upstream'));
		o.depends('action', 'upstream');
		o.rmempty = false;
		upstreamRef(o, 'rule', []);

		o = s.option(form.Value, 'forward', _('Forward to'), _('HOST:PORT; IPv6 in brackets: [2001:db8::5]:22.'));
		o.depends('action', 'forward');
		o.rmempty = false;
		o.validate = validator(ug.checkForward);

		/* ---- upstreams ---- */

		s = m.section(form.GridSection, 'upstream', _('Upstream proxies'), _('Proxies that rules can chain through.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Upstream') + ' ' + (uci.get('ugate', section_id, 'name') || '');
		};

		nameOption(
			s,
			function (map, section_id) {
				return otherNames(map, section_id, 'upstream');
			},
			'upstream'
		);

		o = s.option(form.ListValue, 'type', _('Type'));
		o.value('socks5', 'SOCKS5');
		o.value('http', _('HTTP (CONNECT)'));
		o.value('hbone', _('HBONE (a mesh peer)'));
		o.default = 'socks5';
		o.rmempty = false;

		o = s.option(
			form.Value,
			'server',
			_('Server'),
			_(
				'IP address or host name (an HBONE peer: an IP address; empty when its identity or node names it: then only through its reverse tunnel to this router).'
			)
		);
		o.datatype = 'host';
		o.validate = function (section_id, value) {
			const f = this.section;

			return ug.checkUpstreamServerSet(
				value == null ? '' : String(value),
				liveValue(this.map, section_id, 'type'),
				String(f.formvalue(section_id, 'identity') || ''),
				String(f.formvalue(section_id, 'node') || ''),
				ug.isTrue(f.formvalue(section_id, 'relay'))
			);
		};

		o = s.option(form.Value, 'port', _('Port'), _('An HBONE peer: 15008 when empty.'));
		o.datatype = 'port';
		o.validate = function (section_id, value) {
			return ug.checkUpstreamPort(value == null ? '' : String(value), liveValue(this.map, section_id, 'type'));
		};

		/* config.ts: username and password come together, 1-255 characters each */
		const credential = function (other) {
			return function (section_id, value) {
				const mine = value == null ? '' : String(value),
					theirs = String(this.section.formvalue(section_id, other) || '');

				return ug.checkCredentialPair(mine, theirs);
			};
		};

		o = s.option(form.Value, 'username', _('User name'));
		o.depends('type', 'socks5');
		o.depends('type', 'http');
		o.modalonly = true;
		o.validate = credential('password');

		o = s.option(form.Value, 'password', _('Password'));
		o.depends('type', 'socks5');
		o.depends('type', 'http');
		o.password = true;
		o.modalonly = true;
		o.validate = credential('username');

		o = s.option(
			form.Value,
			'identity',
			_('Peer identity'),
			_('The SPIFFE id the peer must present. Empty = any id of the trust domain.')
		);
		o.depends('type', 'hbone');
		o.modalonly = true;
		o.validate = validator(function (v, section_id) {
			return ug.checkUpstreamIdentity(v, String(this.section.formvalue(section_id, 'trust_domain') || ''));
		});

		[
			[
				'trust_domain',
				_('Peer trust domain'),
				_("The peer's id must be in this trust domain. Empty = the mesh identity's."),
				ug.checkTrustDomain
			],
			[
				'node',
				_('Peer node id'),
				_(
					"The peer's node id ('ugate identity show'). Its live reverse tunnel to this router is used when there is one; with neither identity nor node, only the server."
				),
				ug.checkUpstreamNode
			]
		].forEach(function (d) {
			o = s.option(form.Value, d[0], d[1], d[2]);
			o.depends('type', 'hbone');
			o.modalonly = true;
			o.validate = validator(d[3]);
		});

		/* its server's check refuses a relay without server (config.ts hboneUpstream) */
		o = flag(
			s.option(
				form.Flag,
				'relay',
				_('Relay for node names'),
				_(
					'Rules with the action "Mesh node" reach nodes this router knows no other way to through this peer (double HBONE). Needs a server.'
				)
			)
		);
		o.depends('type', 'hbone');
		o.modalonly = true;
		keepAlive(s, _('each pooled connection'), true);

		/* ---- transparent capture ---- */

		s = m.section(
			form.NamedSection,
			'capture',
			'capture',
			_('Transparent capture'),
			_(
				'Redirect TCP connections from LAN devices (and optionally the router itself) to a redirect listener with nftables, in ugate\'s own table "inet ugate".'
			)
		);
		s.addremove = false;

		o = flag(s.option(form.Flag, 'enabled', _('Enabled')));
		o.rmempty = false;

		/* a capture listener picker: only listeners of `type` (the redirect, tproxy or dns listener) */
		const captureListener = function (name, type, title, description, flag) {
			o = s.option(form.ListValue, name, title, description);
			o.optional = true;
			o.load = function (section_id) {
				const choices = namedSections(null, 'listener')
					.filter(function (n) {
						const t = uci.get('ugate', n.sid, 'type');
						/* captured TCP may also go to a tproxy listener (ug.checkCaptureListener) */
						return t === type || (type === 'redirect' && t === 'tproxy');
					})
					.map(function (n) {
						return [n.name];
					});
				const current = uci.get('ugate', section_id, name);

				/* a wrong name stays visible, so that its check can report it */
				if (
					current != null &&
					current !== '' &&
					!choices.some(function (c) {
						return c[0] === current;
					})
				)
					choices.push([current, _('%s (not a %s listener)').format(current, type)]);

				setChoices(this, choices);
				return this.super('load', [section_id]);
			};
			o.validate = function (section_id, value) {
				if (!ug.isTrue(this.section.formvalue(section_id, 'enabled'))) return true;

				if (flag && !ug.isTrue(this.section.formvalue(section_id, flag))) return true;

				const l =
					value == null || value === ''
						? null
						: namedSections(this.map, 'listener').filter(function (n) {
								return n.name === value;
							})[0];

				return ug.checkCaptureListener(
					value,
					l
						? {
								type: liveValue(this.map, l.sid, 'type'),
								address: liveValue(this.map, l.sid, 'address'),
								networks: L.toArray(liveValue(this.map, l.sid, 'networks'))
							}
						: null,
					ug.isTrue(this.section.formvalue(section_id, 'ipv6')),
					type
				);
			};
		};

		captureListener(
			'listener',
			'redirect',
			_('Redirect listener'),
			_(
				'A listener of type "Transparent (nftables redirect)" on :: (or on 0.0.0.0 without IPv6 capture), or a tproxy listener that takes tcp (TPROXY: no conntrack NAT).'
			)
		);

		o = flag(
			s.option(form.Flag, 'udp', _('Capture UDP'), _('All UDP ports but 53, with TPROXY to a tproxy listener.'))
		);
		o.rmempty = false;

		captureListener(
			'udp_listener',
			'tproxy',
			_('UDP listener'),
			_('A listener of type "Transparent UDP (nftables TPROXY)" on :: (or on 0.0.0.0 without IPv6 capture).'),
			'udp'
		);

		o = s.option(
			form.Value,
			'tproxy_mark',
			_('TPROXY mark'),
			_('Firewall mark of TPROXYed packets; not the firewall mark of ugate (General).')
		);
		o.datatype = 'uinteger';
		o.placeholder = '30055';
		o.validate = validator(function (v, section_id) {
			/* the mark is in use with UDP capture, or with TCP captured by a tproxy listener */
			const target = this.section.formvalue(section_id, 'listener'),
				tcpTproxy = namedSections(this.map, 'listener').some(function (n) {
					return n.name === target && liveValue(this.map, n.sid, 'type') === 'tproxy';
				}, this);

			return ug.checkTproxyMark(
				v,
				liveValue(this.map, 'main', 'mark'),
				ug.isTrue(this.section.formvalue(section_id, 'enabled')) &&
					(ug.isTrue(this.section.formvalue(section_id, 'udp')) || tcpTproxy)
			);
		});

		o = s.option(form.Value, 'tproxy_table', _('TPROXY routing table'), _('Policy routing table of TPROXYed packets.'));
		o.datatype = 'uinteger';
		o.placeholder = '30055';
		o.validate = validator(function (v) {
			return ug.checkInteger(v, 1, 2147483647);
		});

		o = flag(
			s.option(form.Flag, 'dns', _('Capture DNS'), _("LAN clients' DNS (port 53, UDP and TCP) to a dns listener."))
		);
		o.rmempty = false;

		captureListener(
			'dns_listener',
			'dns',
			_('DNS listener'),
			_('A listener of type "DNS server" on :: (or on 0.0.0.0 without IPv6 capture).'),
			'dns'
		);

		o = s.option(
			form.DynamicList,
			'lan',
			_('LAN devices'),
			_('Network devices whose incoming connections are captured. Empty = br-lan.')
		);
		o.datatype = 'netdevname';
		o.placeholder = 'br-lan';
		o.validate = validator(ug.checkIfname);

		o = s.option(form.DynamicList, 'ports', _('Ports'), _('Destination TCP ports to capture. Empty = 80 and 443.'));
		o.datatype = 'port';
		o.validate = validator(ug.checkCapturePort);

		o = flag(
			s.option(
				form.Flag,
				'router_self',
				_("Capture the router's own traffic"),
				_('Needs a non-zero firewall mark (General).')
			)
		);
		o.rmempty = false;

		o = flag(s.option(form.Flag, 'ipv6', _('Capture IPv6')));
		o.default = '1';
		o.rmempty = false;

		const cidrList = function (name, title, description) {
			o = s.option(form.DynamicList, name, title, description);
			o.datatype = 'ipaddr';
			o.validate = validator(function (v, section_id) {
				/* nft.ts: an IPv6 include list needs IPv6 capture */
				return ug.checkCaptureCidr(
					v,
					name === 'include_src' &&
						ug.isTrue(this.section.formvalue(section_id, 'enabled')) &&
						!ug.isTrue(this.section.formvalue(section_id, 'ipv6'))
				);
			});
		};

		cidrList(
			'bypass',
			_('Bypassed destinations'),
			_('Never captured, in addition to the loopback, private, link-local and multicast ranges.')
		);
		cidrList(
			'include_src',
			_('Only these clients'),
			_('When set (here or by MAC), only these source addresses are captured.')
		);
		cidrList('exclude_src', _('Not these clients'));

		o = s.option(form.DynamicList, 'include_mac', _('Only these MAC addresses'));
		o.datatype = 'macaddr';
		o.validate = validator(ug.checkMac);

		o = s.option(form.DynamicList, 'exclude_mac', _('Not these MAC addresses'));
		o.datatype = 'macaddr';
		o.validate = validator(ug.checkMac);

		/* ---- the mesh identity ---- */

		s = m.section(
			form.NamedSection,
			'mesh',
			'mesh',
			_('Mesh identity'),
			_(
				"Who this router is in the mesh (HBONE listeners and upstreams): Istio's identity files and the trust domain of its peers. 'ugate identity init' makes them for a mesh of routers."
			)
		);
		s.addremove = true;

		o = s.option(form.DummyValue, 'node_id', _('Node id'), _("In use by the running ugate; peers' rules name it."));
		o.cfgvalue = function () {
			const mesh = status && status.mesh;

			return mesh && mesh.nodeId ? '%s (%s)'.format(mesh.nodeId, mesh.spiffeId) : _('not running with a mesh identity');
		};

		o = s.option(
			form.Value,
			'identity_dir',
			_('Identity directory'),
			_('Holds cert-chain.pem, key.pem and root-cert.pem.')
		);
		o.placeholder = '/etc/ugate/identity';
		o.validate = validator(ug.checkFilePath);

		o = s.option(
			form.Value,
			'trust_domain',
			_('Trust domain'),
			_("Peers' SPIFFE ids must be in it. Empty = any id the roots vouch for.")
		);
		o.placeholder = 'cluster.local';
		o.validate = validator(ug.checkTrustDomain);

		o = s.option(
			form.Value,
			'node_suffix',
			_('Node name suffix'),
			_('Node names NODEID.SUFFIX too (lower case), e.g. mesh. Empty = only NODEID.NAMESPACE.TRUST-DOMAIN.')
		);
		o.placeholder = 'mesh';
		o.validate = validator(ug.checkNodeSuffix);

		[
			['cert_chain', _('Certificate chain'), 'cert-chain.pem'],
			['key', _('Key'), 'key.pem'],
			['root_cert', _('Root certificates'), 'root-cert.pem']
		].forEach(function (f) {
			o = s.option(form.Value, f[0], f[1], _('Empty = %s in the identity directory.').format(f[2]));
			o.validate = validator(ug.checkFilePath);
		});

		/* ---- reverse tunnels (a gate behind NAT) ---- */

		s = m.section(
			form.GridSection,
			'reverse',
			_('Reverse tunnels'),
			_(
				"For a router behind NAT: keep one tunnel to a public gate's HBONE listener (which lists this router's SPIFFE id), so that the mesh reaches this router without an inbound port. Its streams come in as the listener of this name: only a rule naming it routes them (nothing is exposed by default). Needs the mesh identity."
			)
		);
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;
		s.modaltitle = function (section_id) {
			return _('Reverse tunnel') + ' ' + (uci.get('ugate', section_id, 'name') || section_id);
		};

		/* config.ts: unique among reverse entries, and not a listener's name (the rules could not tell them apart) */
		nameOption(
			s,
			function (map, section_id) {
				return otherNames(map, section_id, 'reverse').concat(
					namedSections(map, 'listener').map(function (n) {
						return n.name;
					})
				);
			},
			_('reverse tunnel or listener')
		);
		o = s.option(
			form.Value,
			'server',
			_('Public gate'),
			_('IP address or host name of the public gate (a name is resolved at each attempt).')
		);
		o.datatype = 'host';
		o.rmempty = false;
		o.placeholder = 'vps.example.net';
		o.validate = validator(function (v) {
			const r = ug.checkServer(v);

			return r !== true ? r : ug.checkReverseMesh(uci.sections('ugate', 'mesh').length > 0);
		});

		o = s.option(form.Value, 'port', _('Port'), _("The public gate's HBONE port."));
		o.datatype = 'port';
		o.placeholder = '15008';
		o.validate = validator(function (v) {
			return ug.checkEndpointPort(v, 1);
		});

		o = s.option(
			form.Value,
			'relay_id',
			_('Public gate identity'),
			_('The SPIFFE id it must present. Empty = any id of the trust domain (Mesh identity).')
		);
		o.placeholder = 'spiffe://cluster.local/ns/vps/sa/relay';
		o.validate = validator(ug.checkSpiffeId);

		[
			['retry', _('Retry after'), _('Seconds before the first new attempt; doubled after each failure.'), '0.5'],
			['retry_max', _('Retry at most after'), _('The longest wait between attempts (jittered to 50-100 %).'), '30']
		].forEach(function (d) {
			o = s.option(form.Value, d[0], d[1], d[2]);
			o.datatype = 'ufloat';
			o.placeholder = d[3];
			o.modalonly = true;
			o.validate = validator(function (v) {
				return ug.checkSeconds(v, d[0]);
			});
		});
		keepAlive(s, _('the tunnel'), false);

		return m.render();
	}
});
