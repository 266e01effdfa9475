// Package p2p is the peer-to-peer transport of one PLUG node.
//
// It moves bytes between the validators of one chain and knows nothing of
// consensus: callers decide what a valid message is. A Host wraps a libp2p
// host (TCP, Noise or TLS, yamux) for a permissioned network: peers are found
// only through configured bootstrap addresses (no DHT, mDNS, NAT traversal or
// relays), an optional allow list gates every connection in both directions,
// and an optional pre-shared key (libp2p pnet) isolates a private network.
//
// Two services sit on top:
//
//   - Topics (Host.Join): gossipsub topics named "/plug/<chain>/<name>/1".
//     Messages are not signed by pubsub (PLUG messages carry their own
//     signatures); a message's ID is the SHA-256 of its data, and the
//     caller's validate function runs before a message is delivered or
//     forwarded, so invalid messages stop at the first honest hop.
//   - Request/response (Host.Handle, Host.Request): one request and one
//     response per stream on protocol "/plug/<chain>/<name>/1", each a
//     uvarint-length-prefixed frame of bounded size, with deadlines.
//
// See docs/p2p.md for the wire details and the reasons behind the choices.
package p2p
