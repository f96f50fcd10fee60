// Command go_tlog_check checks a letterlock audit log served over HTTP with the Go
// reference implementation of signed notes and tiled logs (golang.org/x/mod/sumdb/note
// and .../tlog, as Debian ships them), not with letterlock's code:
//
//	go_tlog_check BASE VKEY OLD_SIZE OLD_ROOT_B64
//
// BASE is the tiles prefix (http://host:port/log/tlog). It opens the checkpoint with
// note.Open, authenticates every level-0 tile against the checkpoint's root with
// tlog.TileHashReader (tiles fetched at their c2sp.org/tlog-tiles paths), checks each
// entry bundle's records hash to the tile's hashes with tlog.RecordHash, and checks
// the consistency proof from OLD_SIZE with tlog.CheckTree. It prints "ok SIZE" or the
// first failure, and exits non-zero on failure.
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fetch(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// c2spPath is the tlog-tiles path of a tile: Go's own path without its height element.
func c2spPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
}

type tiles struct{ base string }

func (r tiles) Height() int { return height }

func (r tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		data, err := fetch(r.base + "/" + c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func check(base, vkey string, oldSize int64, oldRoot string) (int64, error) {
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return 0, fmt.Errorf("verifier key: %v", err)
	}
	msg, err := fetch(base + "/checkpoint")
	if err != nil {
		return 0, err
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		return 0, fmt.Errorf("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[0] != verifier.Name() {
		return 0, fmt.Errorf("checkpoint text %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return 0, err
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return 0, err
	}
	tree := tlog.Tree{N: size, Hash: root}
	reader := tlog.TileHashReader(tree, tiles{base})
	for start := int64(0); start < size; start += 1 << height {
		width := size - start
		if width > 1<<height {
			width = 1 << height
		}
		indexes := make([]int64, width)
		for i := range indexes {
			indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		hashes, err := reader.ReadHashes(indexes) // authenticated against the root
		if err != nil {
			return 0, fmt.Errorf("tiles at %d: %v", start, err)
		}
		t := tlog.Tile{H: height, L: 0, N: start >> height, W: int(width)}
		bundle, err := fetch(base + "/" + strings.Replace(c2spPath(t), "tile/0/", "tile/entries/", 1))
		if err != nil {
			return 0, err
		}
		for i := range hashes {
			if len(bundle) < 2 {
				return 0, fmt.Errorf("entry bundle at %d is short", start)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+l {
				return 0, fmt.Errorf("entry bundle at %d is short", start)
			}
			if tlog.RecordHash(bundle[2:2+l]) != hashes[i] {
				return 0, fmt.Errorf("entry %d does not hash to its tile", start+int64(i))
			}
			bundle = bundle[2+l:]
		}
		if len(bundle) != 0 {
			return 0, fmt.Errorf("entry bundle at %d is too long", start)
		}
	}
	var doc struct {
		Proof []string `json:"proof"`
		Head  struct {
			Size int64  `json:"tree_size"`
			Root string `json:"root_hash"`
		} `json:"head"`
	}
	body, err := fetch(fmt.Sprintf("%s/consistency.json?old=%d", strings.TrimSuffix(base, "/tlog"), oldSize))
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, err
	}
	if doc.Head.Size != size {
		return 0, fmt.Errorf("the log moved on during the check")
	}
	proof := make(tlog.TreeProof, len(doc.Proof))
	for i, p := range doc.Proof {
		if proof[i], err = tlog.ParseHash(p); err != nil {
			return 0, err
		}
	}
	old, err := tlog.ParseHash(oldRoot)
	if err != nil {
		return 0, err
	}
	if err := tlog.CheckTree(proof, size, root, oldSize, old); err != nil {
		return 0, fmt.Errorf("consistency from %d: %v", oldSize, err)
	}
	return size, nil
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: go_tlog_check BASE VKEY OLD_SIZE OLD_ROOT_B64")
		os.Exit(2)
	}
	oldSize, err := strconv.ParseInt(os.Args[3], 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	size, err := check(os.Args[1], os.Args[2], oldSize, os.Args[4])
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	fmt.Println("ok", size)
}
