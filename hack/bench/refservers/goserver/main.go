// Command refserver is the Go reference for the discovery benchmark
// (hack/bench/discovery.sh): a minimal net/http TLS server that answers one
// path with the bytes of one file, with the TLS settings myapiserver uses
// (TLS 1.2 and 1.3, ECDHE with AEAD ciphers only) and a client certificate
// required and verified against a CA. Standard library only.
//
//	refserver -addr 127.0.0.1:18743 -cert tls.crt -key tls.key \
//	  -client-ca ca.crt -body discovery.json -path /apis/infraops.michael.io/v1
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18743", "listen address (host:port)")
	certFile := flag.String("cert", "certs/tls.crt", "serving certificate (PEM)")
	keyFile := flag.String("key", "certs/tls.key", "serving private key (PEM)")
	caFile := flag.String("client-ca", "certs/ca.crt", "CA bundle that client certificates must verify against (PEM)")
	bodyFile := flag.String("body", "", "file whose bytes are the answer (required)")
	path := flag.String("path", "/apis/infraops.michael.io/v1", "the one path answered with 200")
	flag.Parse()
	if *bodyFile == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		log.Fatalf("refserver: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("refserver: serving certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("refserver: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		log.Fatalf("refserver: no certificate found in %s", *caFile)
	}

	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != *path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", length)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})

	srv := &http.Server{
		Addr:    *addr,
		Handler: handler,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
			// TLS 1.2 only: Go's TLS 1.3 suites are fixed (all AEAD).
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
				tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			},
		},
		// HTTP/1.1 only, like myapiserver and the nginx reference: a non-nil
		// empty map turns off HTTP/2 over ALPN.
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	fmt.Fprintf(os.Stderr, "refserver: serving %d bytes at https://%s%s\n", len(body), *addr, *path)
	log.Fatal(srv.ListenAndServeTLS("", ""))
}
