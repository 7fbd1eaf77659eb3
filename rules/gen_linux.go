package rules

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// errNoGenID: the kernel's answer to NFT_MSG_GETGEN lacked NFTA_GEN_ID.
var errNoGenID = errors.New("no NFTA_GEN_ID in the answer")

// rulesetGen reads the namespace's ruleset generation (NFT_MSG_GETGEN,
// linux/netfilter/nf_tables.h): nf_tables bumps it with every committed
// change to any table, so while it stands still no table has changed.
//
//	struct nfgenmsg { __u8 nfgen_family; __u8 version; __be16 res_id; }
//	NFTA_GEN_ID: __be32
func rulesetGen(c *netlink.Conn) (uint32, error) {
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return 0, fmt.Errorf("read ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("read ruleset generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("read ruleset generation: %w", errNoGenID)
}
