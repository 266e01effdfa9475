package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

// Handler serves one request and returns the response. ctx ends when the
// request times out or the host closes; PeerFromContext(ctx) is the
// requester. A returned error is sent to the requester as a RemoteError
// (its text only), so it must not reveal secrets.
type Handler func(ctx context.Context, req []byte) ([]byte, error)

// Response status, the first byte of every response.
const (
	statusOK         byte = 0 // payload: the response
	statusError      byte = 1 // payload: the handler's error text
	statusTooLarge   byte = 2 // payload: which frame was too large
	statusOverloaded byte = 3 // payload: reason

	maxErrorText = 1024
)

// ProtocolID is the stream protocol of name on chain: "/plug/<chain>/<name>/1".
func ProtocolID(chain, name string) protocol.ID {
	return protocol.ID("/plug/" + chain + "/" + name + "/1")
}

type peerKey struct{}

// PeerFromContext returns the requesting peer inside a Handler.
func PeerFromContext(ctx context.Context) (peer.ID, bool) {
	p, ok := ctx.Value(peerKey{}).(peer.ID)
	return p, ok
}

// Handle serves requests on protocol name, replacing any handler already
// registered for it.
func (h *Host) Handle(name string, fn Handler) error {
	if err := checkName("protocol name", name); err != nil {
		return err
	}
	pid := ProtocolID(h.cfg.chainID, name)
	if fn == nil {
		return fmt.Errorf("p2p: handle %s: nil handler", pid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("p2p: handle %s: %w", pid, ErrClosed)
	}
	h.handlers[name] = fn
	h.host.SetStreamHandler(pid, func(s network.Stream) { h.serve(s, pid, fn) })
	return nil
}

// RemoveHandler stops serving protocol name.
func (h *Host) RemoveHandler(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.handlers, name)
	h.host.RemoveStreamHandler(ProtocolID(h.cfg.chainID, name))
}

// serve answers one request stream: read a frame, run fn, write a frame.
func (h *Host) serve(s network.Stream, pid protocol.ID, fn Handler) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = s.Reset()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	from := s.Conn().RemotePeer()
	if !h.gater.allowed(from) { // connections are gated; this covers SetAllowList races
		_ = s.Reset()
		return
	}
	// The request must arrive and be handled within the timeout; writing
	// the response gets its own (respond).
	deadline := time.Now().Add(h.cfg.requestTimeout)
	_ = s.SetReadDeadline(deadline)
	max := h.cfg.maxMsgSize
	br := bufio.NewReader(s)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		log.Debugw("bad request frame", "protocol", pid, "peer", from, "err", err)
		_ = s.Reset()
		return
	}
	if n > uint64(max) {
		log.Debugw("request too large", "protocol", pid, "peer", from, "size", n, "limit", max)
		respond(s, h.cfg.requestTimeout, statusTooLarge, fmt.Appendf(nil, "request of %d bytes exceeds the limit of %d", n, max))
		return
	}
	// Account the buffer with the resource manager, which bounds memory
	// per stream, peer, protocol and host across concurrent requests.
	if err := s.Scope().ReserveMemory(int(n), network.ReservationPriorityHigh); err != nil {
		log.Debugw("request refused: resource limit", "protocol", pid, "peer", from, "size", n, "err", err)
		respond(s, h.cfg.requestTimeout, statusOverloaded, []byte("resource limit reached"))
		return
	}
	defer s.Scope().ReleaseMemory(int(n))
	req := make([]byte, n)
	if _, err := io.ReadFull(br, req); err != nil {
		log.Debugw("truncated request", "protocol", pid, "peer", from, "err", err)
		_ = s.Reset()
		return
	}

	ctx, cancel := context.WithDeadline(context.WithValue(h.ctx, peerKey{}, from), deadline)
	resp, err := callHandler(ctx, fn, req)
	cancel()
	switch {
	case err != nil:
		msg := err.Error()
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText]
		}
		respond(s, h.cfg.requestTimeout, statusError, []byte(msg))
	case len(resp) > max:
		log.Errorw("handler response too large", "protocol", pid, "peer", from, "size", len(resp), "limit", max)
		respond(s, h.cfg.requestTimeout, statusTooLarge, fmt.Appendf(nil, "response of %d bytes exceeds the limit of %d", len(resp), max))
	default:
		respond(s, h.cfg.requestTimeout, statusOK, resp)
	}
}

func callHandler(ctx context.Context, fn Handler, req []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Errorw("request handler panicked", "panic", r)
			err = fmt.Errorf("internal error")
		}
	}()
	return fn(ctx, req)
}

// respond writes status, uvarint length and payload within timeout, then
// closes the stream.
func respond(s network.Stream, timeout time.Duration, status byte, payload []byte) {
	_ = s.SetWriteDeadline(time.Now().Add(timeout))
	hdr := make([]byte, 1, 1+binary.MaxVarintLen64)
	hdr[0] = status
	hdr = binary.AppendUvarint(hdr, uint64(len(payload)))
	if _, err := s.Write(hdr); err != nil {
		_ = s.Reset()
		return
	}
	if _, err := s.Write(payload); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// Request sends req to peer p on protocol name and returns the response.
// It fails with an error wrapping ErrTooLarge if the request or response
// exceeds a size limit, ErrNotAllowed if p is not on the allow list,
// ErrNoHandler if p does not serve name, ErrOverloaded if p lacks
// resources, and a *RemoteError if p's handler returned an error. The
// exchange is bounded by ctx and the request timeout.
func (h *Host) Request(ctx context.Context, p peer.ID, name string, req []byte) ([]byte, error) {
	if err := checkName("protocol name", name); err != nil {
		return nil, err
	}
	pid := ProtocolID(h.cfg.chainID, name)
	fail := func(err error) ([]byte, error) {
		if !errors.Is(err, ErrClosed) && h.isClosed() {
			err = fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return nil, fmt.Errorf("p2p: %s to %s: %w", pid, p, err)
	}
	if h.isClosed() {
		return fail(ErrClosed)
	}
	max := h.cfg.maxMsgSize
	if len(req) > max {
		return fail(fmt.Errorf("request of %d bytes exceeds the limit of %d: %w", len(req), max, ErrTooLarge))
	}
	if p == h.ID() {
		return h.requestSelf(ctx, name, pid, req)
	}
	if !h.gater.allowed(p) {
		return fail(ErrNotAllowed)
	}

	ctx, cancel := context.WithTimeout(ctx, h.cfg.requestTimeout)
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)() // Close aborts requests in flight

	s, err := h.host.NewStream(ctx, p, pid)
	if err != nil {
		return fail(classify("open stream", ctx, err))
	}
	defer context.AfterFunc(ctx, func() { _ = s.Reset() })()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}

	// Write and read concurrently: a peer that refuses a request answers
	// before reading all of it.
	written := make(chan error, 1)
	go func() {
		frame := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64), uint64(len(req)))
		_, err := s.Write(frame)
		if err == nil {
			_, err = s.Write(req)
		}
		if err == nil {
			err = s.CloseWrite()
		}
		written <- err
	}()
	status, payload, rerr := readResponse(s, max)
	if rerr != nil || status != statusOK {
		_ = s.Reset() // unblocks the writer
	}
	werr := <-written
	if rerr != nil {
		if errors.Is(rerr, ErrTooLarge) {
			return fail(rerr)
		}
		if werr != nil && (errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF)) {
			rerr = werr
		}
		return fail(classify("exchange", ctx, rerr))
	}
	_ = s.Close()

	switch status {
	case statusOK:
		return payload, nil
	case statusError:
		return nil, &RemoteError{Peer: p, Protocol: string(pid), Message: string(payload)}
	case statusTooLarge:
		return fail(fmt.Errorf("remote: %s: %w", payload, ErrTooLarge))
	case statusOverloaded:
		return fail(fmt.Errorf("remote: %s: %w", payload, ErrOverloaded))
	default:
		return fail(fmt.Errorf("unknown response status %d", status))
	}
}

// requestSelf serves a request to this host's own ID without the network.
func (h *Host) requestSelf(ctx context.Context, name string, pid protocol.ID, req []byte) ([]byte, error) {
	h.mu.Lock()
	fn := h.handlers[name]
	h.mu.Unlock()
	if fn == nil {
		return nil, fmt.Errorf("p2p: %s to self: %w", pid, ErrNoHandler)
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, peerKey{}, h.ID()), h.cfg.requestTimeout)
	defer cancel()
	resp, err := callHandler(ctx, fn, req)
	if err != nil {
		return nil, &RemoteError{Peer: h.ID(), Protocol: string(pid), Message: err.Error()}
	}
	if len(resp) > h.cfg.maxMsgSize {
		return nil, fmt.Errorf("p2p: %s to self: response of %d bytes exceeds the limit of %d: %w", pid, len(resp), h.cfg.maxMsgSize, ErrTooLarge)
	}
	return resp, nil
}

// readResponse reads status byte, uvarint length and payload.
func readResponse(s io.Reader, max int) (byte, []byte, error) {
	br := bufio.NewReader(s)
	status, err := br.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, nil, err
	}
	limit := uint64(max)
	if status != statusOK {
		limit = maxErrorText + 256
	}
	if n > limit {
		return 0, nil, fmt.Errorf("response of %d bytes exceeds the limit of %d: %w", n, limit, ErrTooLarge)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return status, payload, nil
}

// classify maps libp2p errors to this package's sentinels.
func classify(step string, ctx context.Context, err error) error {
	switch {
	case errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}):
		return fmt.Errorf("%s: %w: %w", step, ErrNoHandler, err)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w (%w)", step, ctx.Err(), err)
	case deadlinePassed(ctx): // the stream deadline fired just before ctx's timer
		return fmt.Errorf("%s: %w (%w)", step, context.DeadlineExceeded, err)
	default:
		return fmt.Errorf("%s: %w", step, err)
	}
}

func deadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
