// Command vcsim serves govmomi's vSphere API simulator for Cordon's tests and benchmarks:
// HTTPS on 127.0.0.1 with a certificate it makes for itself (its CA written to -ca-file so
// clients verify it), fixed credentials (only those log in, so a wrong password fails as it
// would on a real vCenter), and machine-readable lines on stdout:
//
//	VCSIM_URL=https://127.0.0.1:PORT/sdk
//	VCSIM_CA=/path/ca.pem
//	VCSIM_USERNAME=…
//	VCSIM_PASSWORD=…
//	VCSIM_MODE=vpx|esx
//	VCSIM_READY=1
//
// It runs until SIGTERM or SIGINT. `go install …/vcsim` does not build from the module proxy
// (nested module), hence this program of our own on the simulator library.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("l", "127.0.0.1:0", "listen address (127.0.0.1 only, port 0 = any free port)")
	esx := flag.Bool("esx", false, "ESXi mode: one standalone host, no vCenter (simulator.ESX())")
	dc := flag.Int("dc", 1, "vCenter mode: datacenters")
	cluster := flag.Int("cluster", 1, "vCenter mode: clusters per datacenter")
	host := flag.Int("host", 3, "vCenter mode: hosts per cluster")
	standalone := flag.Int("standalone-host", 1, "vCenter mode: standalone hosts per datacenter")
	vm := flag.Int("vm", 2, "VMs per resource pool (each cluster's and each standalone host's root pool; ESXi: in total)")
	ds := flag.Int("ds", 1, "datastores")
	pg := flag.Int("pg", 1, "vCenter mode: distributed portgroups per datacenter (0 = VM NICs on the standard \"VM Network\")")
	autostart := flag.Bool("autostart", true, "power on the VMs the model creates")
	username := flag.String("username", "cordon", "the one user name that logs in")
	password := flag.String("password", "", "the one password that logs in (default: random, printed as VCSIM_PASSWORD)")
	caFile := flag.String("ca-file", "", "write the CA certificate (PEM) clients verify the server with to this file (required)")
	flag.Parse()

	if *caFile == "" {
		fatal("-ca-file is required: clients need the CA to verify the simulator's certificate")
	}
	if h, _, err := net.SplitHostPort(*listen); err != nil || h != "127.0.0.1" {
		fatal("-l must be 127.0.0.1:PORT, got %q", *listen)
	}
	if *password == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		*password = hex.EncodeToString(b)
	}

	var model *simulator.Model
	mode := "vpx"
	if *esx {
		mode = "esx"
		model = simulator.ESX()
	} else {
		model = simulator.VPX()
		model.Datacenter = *dc
		model.Cluster = *cluster
		model.ClusterHost = *host
		model.Host = *standalone
		model.Portgroup = *pg
	}
	model.Machine = *vm
	model.Datastore = *ds
	model.Autostart = *autostart

	if err := model.Create(); err != nil {
		fatal("creating the model: %v", err)
	}

	cert, caPEM, err := makeCertificate()
	if err != nil {
		fatal("making the certificate: %v", err)
	}
	if err := os.WriteFile(*caFile, caPEM, 0o644); err != nil {
		fatal("writing %s: %v", *caFile, err)
	}

	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	server := model.Service.NewServer()
	defer server.Close()

	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\nVCSIM_CA=%s\nVCSIM_USERNAME=%s\nVCSIM_PASSWORD=%s\nVCSIM_MODE=%s\nVCSIM_PID=%d\nVCSIM_READY=1\n",
		u.String(), *caFile, *username, *password, mode, os.Getpid())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	// The model's datastore folder (os.TempDir()/govcsim-*) first: the deferred server.Close
	// waits for requests in progress, and a client's long poll (WaitForUpdatesEx) can hold it
	// past stop.sh's patience, which then kills the process before a deferred Remove would run.
	model.Remove()
	server.CloseClientConnections()
}

// makeCertificate makes a throwaway CA and a server certificate it signs for 127.0.0.1 and
// localhost, so clients verify the chain against the CA file instead of turning checks off.
func makeCertificate() (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Cordon vcsim test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vcsim: "+format+"\n", args...)
	os.Exit(1)
}
