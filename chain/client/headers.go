package client

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/plugchain/plug/chain/block"
	"github.com/plugchain/plug/chain/consensus"
	"github.com/plugchain/plug/chain/gateway"
)

// Status returns the status of the node that answers.
func (c *Client) Status(ctx context.Context) (*gateway.Status, error) {
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/status"})
	if err != nil {
		return nil, err
	}
	var st gateway.Status
	if err := decodeJSON(r, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Header returns the header at height (0: the latest) with its certificate,
// checked: the hash is the header's, and the certificate certifies it.
func (c *Client) Header(ctx context.Context, height uint64) (*gateway.HeaderResponse, error) {
	p := "/v1/headers/latest"
	if height > 0 {
		p = "/v1/headers/" + strconv.FormatUint(height, 10)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: p, cbor: true})
	if err != nil {
		return nil, err
	}
	var hr gateway.HeaderResponse
	if err := decodeCBOR(r, &hr); err != nil {
		return nil, err
	}
	if hr.Header == nil {
		return nil, fmt.Errorf("%w: %s answered no header", ErrProof, r.endpoint)
	}
	if height > 0 && hr.Header.Height != height {
		return nil, fmt.Errorf("%w: %s answered header %d for height %d", ErrProof, r.endpoint, hr.Header.Height, height)
	}
	if hr.Hash != hr.Header.Hash() {
		return nil, fmt.Errorf("%w: header %d: the hash given is not the header's", ErrProof, hr.Header.Height)
	}
	if err := c.checkCert(hr.Header, hr.Certificate); err != nil {
		return nil, err
	}
	return &hr, nil
}

// checkCert checks that cert certifies hdr (and, with a trusted set, that it
// carries a quorum of it).
func (c *Client) checkCert(hdr *block.Header, cert *consensus.Certificate) error {
	if c.chainID != "" && hdr.ChainID != c.chainID {
		return fmt.Errorf("%w: header of chain %q, want %q", ErrProof, hdr.ChainID, c.chainID)
	}
	if cert == nil {
		return fmt.Errorf("%w: header %d has no commit certificate", ErrProof, hdr.Height)
	}
	if cert.BlockID != hdr.Hash() || cert.Height != hdr.Height || cert.ChainID != hdr.ChainID {
		return fmt.Errorf("%w: the certificate of height %d does not certify this header", ErrProof, hdr.Height)
	}
	if len(cert.Votes) == 0 {
		return fmt.Errorf("%w: the certificate of height %d has no votes", ErrProof, hdr.Height)
	}
	if c.trusted != nil {
		if err := cert.Verify(hdr.ChainID, c.trusted); err != nil {
			return fmt.Errorf("%w: certificate of height %d: %v", ErrProof, hdr.Height, err)
		}
	}
	return nil
}

// Block returns the block at height (>= 1) with its certificate, checked: the
// hash is the header's, the transactions match the header's tx root and the
// listed IDs, and the certificate certifies the header.
func (c *Client) Block(ctx context.Context, height uint64) (*gateway.BlockResponse, error) {
	if height == 0 {
		return nil, fmt.Errorf("%w: heights start at 1", ErrInvalid)
	}
	r, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/blocks/" + strconv.FormatUint(height, 10), cbor: true})
	if err != nil {
		return nil, err
	}
	var br gateway.BlockResponse
	if err := decodeCBOR(r, &br); err != nil {
		return nil, err
	}
	if br.Block == nil || br.Block.Header.Height != height {
		return nil, fmt.Errorf("%w: %s answered no block or another height for %d", ErrProof, r.endpoint, height)
	}
	hdr := &br.Block.Header
	if br.Hash != hdr.Hash() {
		return nil, fmt.Errorf("%w: block %d: the hash given is not the header's", ErrProof, height)
	}
	root, err := block.TxRoot(br.Block.Txs)
	if err != nil || root != hdr.TxRoot {
		return nil, fmt.Errorf("%w: block %d: the transactions do not match the header's tx root", ErrProof, height)
	}
	if len(br.TxIDs) != len(br.Block.Txs) {
		return nil, fmt.Errorf("%w: block %d lists %d IDs for %d transactions", ErrProof, height, len(br.TxIDs), len(br.Block.Txs))
	}
	for i, t := range br.Block.Txs {
		if id, err := t.ID(); err != nil || id != br.TxIDs[i] {
			return nil, fmt.Errorf("%w: block %d: transaction %d has another ID than listed", ErrProof, height, i)
		}
	}
	if err := c.checkCert(hdr, br.Certificate); err != nil {
		return nil, err
	}
	return &br, nil
}
