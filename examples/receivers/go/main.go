// A CauseFlow webhook receiver in Go, standard library only.
//
//	CAUSEFLOW_WEBHOOK_SECRET=whsec_… go run . [PORT]
//	go run . --selftest [--vectors ../vectors.json]
//
// CAUSEFLOW_WEBHOOK_SECRET may hold several secrets separated by commas (a rotation). A verified
// delivery is answered 204 and printed; one whose webhook-id was seen before is answered 204 and
// not processed again; anything else is answered 400. See docs/receivers.md.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const toleranceSeconds = 300

// standardKey is the Standard Webhooks key: the base64 after `whsec_`, else the UTF-8 bytes.
func standardKey(secret string) ([]byte, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return []byte(secret), nil
	}
	rest := strings.TrimPrefix(secret, "whsec_")
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(rest, "="))
}

func mac(key []byte, parts ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func hexSignature(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac([]byte(secret), body))
}

func standardSignature(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := standardKey(secret)
	if err != nil {
		return "", fmt.Errorf("a whsec_ secret must continue in base64: %w", err)
	}
	signed := fmt.Sprintf("%s.%d.", id, timestamp)
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, []byte(signed), body)), nil
}

func same(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// verify returns nil when body verifies with one of secrets, else an error saying why.
func verify(body []byte, h http.Header, secrets []string, now time.Time) error {
	signature := h.Values("webhook-signature")
	if len(signature) == 0 {
		given := strings.TrimSpace(h.Get("X-CauseFlow-Signature"))
		if given == "" {
			return errors.New("no signature header")
		}
		for _, s := range secrets {
			if same(hexSignature(s, body), given) {
				return nil
			}
		}
		return errors.New("X-CauseFlow-Signature does not match")
	}
	id := h.Get("webhook-id")
	timestamp, err := strconv.ParseInt(strings.TrimSpace(h.Get("webhook-timestamp")), 10, 64)
	if id == "" || err != nil {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	if math.Abs(float64(now.Unix()-timestamp)) > toleranceSeconds {
		return errors.New("timestamp outside tolerance")
	}
	matched := false
	for _, s := range secrets {
		expected, err := standardSignature(s, id, timestamp, body)
		if err != nil {
			return err
		}
		for _, entry := range strings.Fields(strings.Join(signature, " ")) {
			if strings.HasPrefix(entry, "v1,") && same(expected, entry) {
				matched = true
			}
		}
	}
	if !matched {
		return errors.New("webhook-signature does not match")
	}
	return nil
}

type vectors struct {
	Vectors []struct {
		Name      string            `json:"name"`
		Secrets   []string          `json:"secrets"`
		WebhookID string            `json:"webhookId"`
		Timestamp int64             `json:"timestamp"`
		Body      string            `json:"body"`
		Headers   map[string]string `json:"headers"`
	} `json:"vectors"`
	Checks []struct {
		Name    string            `json:"name"`
		Secrets []string          `json:"secrets"`
		Now     int64             `json:"now"`
		Body    string            `json:"body"`
		Headers map[string]string `json:"headers"`
		Valid   bool              `json:"valid"`
	} `json:"checks"`
}

func selftest(path string) int {
	raw, err := os.ReadFile(path)
	var doc vectors
	if err == nil {
		err = json.Unmarshal(raw, &doc)
	}
	if err != nil {
		fmt.Println("cannot read", path+":", err)
		return 2
	}
	var failed []string
	for _, v := range doc.Vectors {
		var entries []string
		for _, s := range v.Secrets {
			sig, _ := standardSignature(s, v.WebhookID, v.Timestamp, []byte(v.Body))
			entries = append(entries, sig)
		}
		if hexSignature(v.Secrets[0], []byte(v.Body)) != v.Headers["X-CauseFlow-Signature"] ||
			strings.Join(entries, " ") != v.Headers["webhook-signature"] {
			failed = append(failed, "signing: "+v.Name)
		}
	}
	for _, c := range doc.Checks {
		h := http.Header{}
		for name, value := range c.Headers {
			h.Set(name, value)
		}
		accepted := verify([]byte(c.Body), h, c.Secrets, time.Unix(c.Now, 0)) == nil
		if accepted != c.Valid {
			failed = append(failed, "check: "+c.Name)
		}
	}
	total := len(doc.Vectors) + len(doc.Checks)
	for _, name := range failed {
		fmt.Println("FAILED", name)
	}
	fmt.Printf("selftest: %d of %d vectors and checks agree\n", total-len(failed), total)
	if len(failed) > 0 {
		return 1
	}
	return 0
}

// receiver answers deliveries; seen holds the webhook-ids processed (a real receiver stores them).
type receiver struct {
	secrets []string
	mu      sync.Mutex
	seen    map[string]bool
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var event struct{ ID, Event string }
	if err == nil {
		err = verify(body, r.Header, rc.secrets, time.Now())
	}
	if err == nil {
		err = json.Unmarshal(body, &event)
	}
	if err != nil {
		fmt.Println("rejected:", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	delivery := r.Header.Get("webhook-id")
	if delivery == "" {
		delivery = r.Header.Get("X-CauseFlow-Delivery")
	}
	w.WriteHeader(http.StatusNoContent) // answer first, then work (here: print)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.seen[delivery] {
		fmt.Println("duplicate", delivery)
		return
	}
	rc.seen[delivery] = true
	fmt.Println("verified", event.Event, event.ID, delivery)
}

func main() {
	test := flag.Bool("selftest", false, "check the test vectors and exit")
	path := flag.String("vectors", "../vectors.json", "the test vectors (with --selftest)")
	flag.Parse()
	if *test {
		os.Exit(selftest(*path))
	}
	secrets := os.Getenv("CAUSEFLOW_WEBHOOK_SECRET")
	if secrets == "" {
		fmt.Fprintln(os.Stderr, "set CAUSEFLOW_WEBHOOK_SECRET (several: comma-separated)")
		os.Exit(2)
	}
	port := "3000"
	if flag.NArg() > 0 {
		port = flag.Arg(0)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on http://%s/hooks\n", listener.Addr())
	rc := &receiver{secrets: strings.Split(secrets, ","), seen: map[string]bool{}}
	server := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, server.Serve(listener))
	os.Exit(1)
}
