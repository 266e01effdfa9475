package p2p

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Sentinel errors. Errors returned by this package wrap them with context;
// test with errors.Is.
var (
	// ErrTooLarge: a message, request or response exceeds the size limit.
	ErrTooLarge = errors.New("p2p: message too large")
	// ErrNotAllowed: the peer is not on the allow list.
	ErrNotAllowed = errors.New("p2p: peer not allowed")
	// ErrClosed: the host or topic is closed.
	ErrClosed = errors.New("p2p: closed")
	// ErrNoPeers: no (or not enough) peers were reachable in time.
	ErrNoPeers = errors.New("p2p: no peers")
	// ErrNoHandler: the remote peer has no handler for the protocol.
	ErrNoHandler = errors.New("p2p: no handler for protocol")
	// ErrOverloaded: the remote peer refused the request for lack of
	// resources; retry later.
	ErrOverloaded = errors.New("p2p: peer overloaded")
	// ErrIgnore may be returned (wrapped) by a topic validator to drop a
	// message without penalising the peer that forwarded it, e.g. a vote
	// for a height that is already decided. Any other error rejects the
	// message and lowers the forwarder's score.
	ErrIgnore = errors.New("p2p: message ignored")
)

// RemoteError is the error a request handler returned on the remote peer.
type RemoteError struct {
	Peer     peer.ID
	Protocol string
	Message  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("p2p: %s from peer %s: remote handler: %s", e.Protocol, e.Peer, e.Message)
}
