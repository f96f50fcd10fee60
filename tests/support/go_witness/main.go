// Command go_witness is a tlog witness (c2sp.org/tlog-witness) for the tests, whose
// checks are those of the Go reference implementation: the log's checkpoint is
// opened with golang.org/x/mod/sumdb/note and consistency proofs are checked with
// golang.org/x/mod/sumdb/tlog.CheckTree (as Debian ships them). It cosigns with
// cosignature/v1 (c2sp.org/tlog-cosignature), which that version of the note package
// does not know, so those few lines are written here from the specification.
//
//	go_witness NAME ORIGIN LOG_VKEY
//
// It listens on a free loopback port and prints "url URL" and "key VKEY". Besides
// POST /add-checkpoint it answers GET /requests (one "STATUS OLD" line per request)
// and GET /latest (one "ORIGIN SIZE ROOT" line per log) for the tests.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type state struct {
	size int64
	root tlog.Hash
}

type witness struct {
	name     string
	priv     ed25519.PrivateKey
	pub      ed25519.PublicKey
	origin   string
	verifier note.Verifier
	mu       sync.Mutex
	latest   map[string]state
	requests []string
}

type refusal struct {
	status int
	body   string
	ctype  string
}

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status, fmt.Sprintf(format, args...) + "\n", "text/plain; charset=utf-8"}
}

func (w *witness) keyID() []byte {
	h := sha256.Sum256(append([]byte(w.name+"\n\x04"), w.pub...))
	return h[:4]
}

func (w *witness) vkey() string {
	return fmt.Sprintf("%s+%x+%s", w.name, w.keyID(),
		base64.StdEncoding.EncodeToString(append([]byte{0x04}, w.pub...)))
}

func (w *witness) add(body []byte) ([]byte, int64, *refusal) {
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return nil, -1, refuse(400, "no blank line after the proof")
	}
	lines := strings.Split(string(head), "\n")
	if !strings.HasPrefix(lines[0], "old ") {
		return nil, -1, refuse(400, "no old size")
	}
	old, err := strconv.ParseInt(lines[0][4:], 10, 64)
	if err != nil || old < 0 || strconv.FormatInt(old, 10) != lines[0][4:] {
		return nil, -1, refuse(400, "bad old size")
	}
	proof := tlog.TreeProof{}
	for _, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return nil, old, refuse(400, "bad proof line")
		}
		proof = append(proof, h)
	}
	text, _, _ := strings.Cut(string(signed), "\n")
	if text != w.origin {
		return nil, old, refuse(404, "unknown log %q", text)
	}
	n, err := note.Open(signed, note.VerifierList(w.verifier))
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return nil, old, refuse(403, "no signature by the log")
		}
		return nil, old, refuse(403, "%v", err)
	}
	cp := strings.Split(n.Text, "\n")
	if len(cp) < 4 || cp[0] != w.origin {
		return nil, old, refuse(400, "not a checkpoint")
	}
	size, err := strconv.ParseInt(cp[1], 10, 64)
	if err != nil || size < 0 {
		return nil, old, refuse(400, "bad size")
	}
	root, err := tlog.ParseHash(cp[2])
	if err != nil {
		return nil, old, refuse(400, "bad root hash")
	}
	if old > size {
		return nil, old, refuse(400, "old size beyond the checkpoint")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	known, seen := w.latest[w.origin]
	if old != known.size {
		return nil, old, &refusal{409, fmt.Sprintf("%d\n", known.size), "text/x.tlog.size"}
	}
	switch {
	case old == size:
		if seen && root != known.root {
			return nil, old, refuse(409, "same size, another root")
		}
	case old == 0:
		if len(proof) != 0 {
			return nil, old, refuse(422, "a proof from size 0 is empty")
		}
	default:
		if err := tlog.CheckTree(proof, size, root, old, known.root); err != nil {
			return nil, old, refuse(422, "consistency: %v", err)
		}
	}
	w.latest[w.origin] = state{size, root}
	now := uint64(time.Now().Unix())
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", now, n.Text)
	sig := append([]byte{}, w.keyID()...)
	sig = binary.BigEndian.AppendUint64(sig, now)
	sig = append(sig, ed25519.Sign(w.priv, []byte(msg))...)
	return []byte(fmt.Sprintf("\u2014 %s %s\n", w.name, base64.StdEncoding.EncodeToString(sig))), old, nil
}

func (w *witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/add-checkpoint":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(rw, "unreadable body", 400)
			return
		}
		out, old, ref := w.add(body)
		status := 200
		if ref != nil {
			status = ref.status
			rw.Header().Set("Content-Type", ref.ctype)
			rw.WriteHeader(ref.status)
			io.WriteString(rw, ref.body)
		} else {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(out)
		}
		w.mu.Lock()
		w.requests = append(w.requests, fmt.Sprintf("%d %d", status, old))
		w.mu.Unlock()
	case r.Method == http.MethodGet && r.URL.Path == "/requests":
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, l := range w.requests {
			fmt.Fprintln(rw, l)
		}
	case r.Method == http.MethodGet && r.URL.Path == "/latest":
		w.mu.Lock()
		defer w.mu.Unlock()
		for origin, s := range w.latest {
			fmt.Fprintf(rw, "%s %d %s\n", origin, s.size, s.root.String())
		}
	default:
		http.NotFound(rw, r)
	}
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: go_witness NAME ORIGIN LOG_VKEY")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "log key:", err)
		os.Exit(2)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	w := &witness{name: os.Args[1], priv: priv, pub: pub, origin: os.Args[2],
		verifier: verifier, latest: map[string]state{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("url http://%s\nkey %s\n", ln.Addr(), w.vkey())
	os.Stdout.Sync()
	panic(http.Serve(ln, w))
}
