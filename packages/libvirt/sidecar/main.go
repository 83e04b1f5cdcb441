// cordon-libvirt-sidecar: the one process in Cordon that speaks libvirt's RPC protocol
// (through github.com/digitalocean/go-libvirt, pure Go, no libvirt.so). It serves one libvirt
// URI per process and speaks JSON lines with the TypeScript connector (@cordon/libvirt):
//
//	stdin, first line: {"uri":"qemu:///system","follow":true,"pingSeconds":15}
//	stdout: {"t":"host",…} then {"t":"sync",…}, then with follow {"t":"event",…} until the
//	        connection ends: {"t":"disconnected",…} and exit 3. Errors: {"t":"error",…}, exit 2.
//
// The URI comes on stdin, not argv, so credentials in it never show in `ps`. The sidecar exits
// when stdin closes, so it never outlives the connector. It holds no state across runs: the
// connector restarts it after a disconnect and resyncs.
//
// `cordon-libvirt-sidecar parse-xml` reads one domain XML on stdin and prints the Domain it
// yields: the connector's tests use it to check the XML reading without a daemon.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	libvirt "github.com/digitalocean/go-libvirt"
)

const protocolVersion = 1

type config struct {
	URI         string `json:"uri"`
	Follow      bool   `json:"follow"`
	PingSeconds int    `json:"pingSeconds"`
	// RefreshSeconds: a full listing this often, for what changes without a lifecycle event
	// (the current snapshot, addresses). 0 = the default, 30.
	RefreshSeconds int `json:"refreshSeconds"`
}

var (
	outMu sync.Mutex
	out   = bufio.NewWriterSize(os.Stdout, 64<<10)
)

// emit writes one message as one line; messages never interleave.
func emit(msg map[string]any) {
	b, err := json.Marshal(msg)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"t": "error", "code": "internal", "message": err.Error()})
	}
	outMu.Lock()
	defer outMu.Unlock()
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
}

func fail(code string, err error, exit int) {
	emit(map[string]any{"t": "error", "code": code, "message": err.Error()})
	os.Exit(exit)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "parse-xml" {
		parseXMLMain()
		return
	}
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		fail("config", fmt.Errorf("no configuration line on stdin: %w", err), 2)
	}
	var cfg config
	if err := json.Unmarshal([]byte(line), &cfg); err != nil {
		fail("config", fmt.Errorf("configuration line is not JSON: %w", err), 2)
	}
	if cfg.RefreshSeconds <= 0 {
		cfg.RefreshSeconds = 30
	}
	if cfg.PingSeconds <= 0 {
		cfg.PingSeconds = 15
	}
	u, err := url.Parse(cfg.URI)
	if err != nil || u.Scheme == "" {
		fail("config", fmt.Errorf("not a libvirt URI: %q", redact(cfg.URI)), 2)
	}
	// The connector closing our stdin (or dying) ends the sidecar.
	go func() {
		io.Copy(io.Discard, in)
		os.Exit(0)
	}()

	l, err := libvirt.ConnectToURI(u)
	if err != nil {
		fail("connect", err, 2)
	}
	s := &session{l: l}
	if err := s.run(cfg); err != nil {
		fail("rpc", err, 2)
	}
}

type session struct{ l *libvirt.Libvirt }

func (s *session) run(cfg config) error {
	hostname, err := s.l.ConnectGetHostname()
	if err != nil {
		return fmt.Errorf("ConnectGetHostname: %w", err)
	}
	libVer, err := s.l.ConnectGetLibVersion()
	if err != nil {
		return fmt.Errorf("ConnectGetLibVersion: %w", err)
	}
	emit(map[string]any{"t": "host", "v": protocolVersion, "hostname": hostname, "libvirtVersion": libVer})

	// Register for events before listing: a change between the two then shows up both in the
	// listing and as an event, never in neither (the connector folds such doubles away).
	var events <-chan libvirt.DomainEventLifecycleMsg
	if cfg.Follow {
		events, err = s.l.LifecycleEvents(context.Background())
		if err != nil {
			return fmt.Errorf("registering for lifecycle events: %w", err)
		}
	}
	doms, err := s.listDomains()
	if err != nil {
		return err
	}
	emit(map[string]any{"t": "sync", "ts": nowMs(), "domains": doms})
	if !cfg.Follow {
		out.Flush()
		os.Exit(0)
	}

	go s.ping(time.Duration(cfg.PingSeconds) * time.Second)
	refresh := time.NewTicker(time.Duration(cfg.RefreshSeconds) * time.Second)
	// soon: a listing shortly after an event that ends a job whose outcome has no event of its
	// own (a snapshot: the domain pauses and resumes, and the snapshot becomes current after).
	var soon <-chan time.Time
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				s.disconnected("the event stream ended")
			}
			s.event(ev)
			if ev.Event == int32(libvirt.DomainEventResumed) {
				soon = time.After(500 * time.Millisecond)
			}
		case <-soon:
			soon = nil
			s.relist()
		case <-refresh.C:
			s.relist()
		case <-s.l.Disconnected():
			s.disconnected("libvirt closed the connection")
		}
	}
}

// relist sends the full listing again; the connector diffs it with what it tracks.
func (s *session) relist() {
	doms, err := s.listDomains()
	if err != nil {
		s.disconnected("listing domains failed: " + err.Error())
	}
	emit(map[string]any{"t": "sync", "ts": nowMs(), "domains": doms})
}

func (s *session) disconnected(why string) {
	emit(map[string]any{"t": "disconnected", "message": why})
	os.Exit(3)
}

// ping notices a connection that is silently dead (TCP, ssh): libvirt sends no keepalives to
// a client that did not ask for them, so the sidecar asks something cheap now and then.
func (s *session) ping(every time.Duration) {
	for {
		time.Sleep(every)
		done := make(chan error, 1)
		go func() { _, err := s.l.ConnectGetLibVersion(); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				s.disconnected("ping failed: " + err.Error())
			}
		case <-time.After(2 * every):
			s.disconnected(fmt.Sprintf("libvirt did not answer a ping within %s", 2*every))
		}
	}
}

func (s *session) event(ev libvirt.DomainEventLifecycleMsg) {
	ts := nowMs()
	msg := map[string]any{
		"t": "event", "ts": ts, "uuid": uuidString(ev.Dom.UUID), "name": ev.Dom.Name,
		"event": ev.Event, "detail": ev.Detail,
	}
	// The domain as it is now (after the event; later events may already show in it).
	// Gone (undefined) is null. Other errors leave it out: the connector keeps what it had.
	d, err := s.l.DomainLookupByUUID(ev.Dom.UUID)
	if err != nil {
		if isNoDomain(err) {
			msg["dom"] = nil
		} else {
			msg["domError"] = err.Error()
		}
	} else if dom, err := s.describe(d); err == nil {
		msg["dom"] = dom
	} else if isNoDomain(err) {
		msg["dom"] = nil
	} else {
		msg["domError"] = err.Error()
	}
	emit(msg)
}

func (s *session) listDomains() ([]Domain, error) {
	flags := libvirt.ConnectListDomainsActive | libvirt.ConnectListDomainsInactive
	ds, _, err := s.l.ConnectListAllDomains(1, flags)
	if err != nil {
		return nil, fmt.Errorf("ConnectListAllDomains: %w", err)
	}
	out := make([]Domain, 0, len(ds))
	for _, d := range ds {
		dom, err := s.describe(d)
		if err != nil {
			if isNoDomain(err) {
				continue // undefined while we were listing: its event follows
			}
			return nil, err
		}
		out = append(out, dom)
	}
	return out, nil
}

// describe reads one domain: state, XML (live when running, else the persistent config),
// the current snapshot and, best effort, the addresses libvirt knows.
func (s *session) describe(d libvirt.Domain) (Domain, error) {
	dom := Domain{UUID: uuidString(d.UUID), Name: d.Name, ID: d.ID}
	state, reason, err := s.l.DomainGetState(d, 0)
	if err != nil {
		return dom, fmt.Errorf("DomainGetState(%s): %w", d.Name, err)
	}
	dom.State, dom.Reason = state, reason
	if !active(state) {
		dom.ID = -1
	}
	p, err := s.l.DomainIsPersistent(d)
	if err != nil {
		return dom, fmt.Errorf("DomainIsPersistent(%s): %w", d.Name, err)
	}
	dom.Persistent = p == 1
	doc, err := s.l.DomainGetXMLDesc(d, 0)
	if err != nil {
		return dom, fmt.Errorf("DomainGetXMLDesc(%s): %w", d.Name, err)
	}
	if err := parseDomainXML(&dom, doc); err != nil {
		return dom, fmt.Errorf("%s: %w", d.Name, err)
	}
	if has, err := s.l.DomainHasCurrentSnapshot(d, 0); err == nil && has == 1 {
		if snap, err := s.l.DomainSnapshotCurrent(d, 0); err == nil {
			dom.Snapshot = snap.Name
		}
	}
	if active(state) && len(dom.Nics) > 0 {
		s.addresses(d, &dom)
	}
	return dom, nil
}

// addresses asks libvirt's DHCP leases, then the host's ARP table; the guest agent is not
// asked (it needs one in the guest and blocks while the guest is busy). Errors are ignored:
// addresses are best effort.
func (s *session) addresses(d libvirt.Domain, dom *Domain) {
	byMAC := map[string]*Nic{}
	for i := range dom.Nics {
		byMAC[dom.Nics[i].MAC] = &dom.Nics[i]
	}
	for _, src := range []uint32{uint32(libvirt.DomainInterfaceAddressesSrcLease), uint32(libvirt.DomainInterfaceAddressesSrcArp)} {
		ifaces, err := s.l.DomainInterfaceAddresses(d, src, 0)
		if err != nil {
			continue
		}
		for _, ifc := range ifaces {
			if len(ifc.Hwaddr) == 0 {
				continue
			}
			n := byMAC[strings.ToLower(ifc.Hwaddr[0])]
			if n == nil {
				continue
			}
			for _, a := range ifc.Addrs {
				if !contains(n.IPs, a.Addr) {
					n.IPs = append(n.IPs, a.Addr)
				}
			}
		}
	}
}

func active(state int32) bool {
	switch libvirt.DomainState(state) {
	case libvirt.DomainRunning, libvirt.DomainBlocked, libvirt.DomainPaused, libvirt.DomainShutdown, libvirt.DomainPmsuspended:
		return true
	}
	return false
}

func isNoDomain(err error) bool {
	var e libvirt.Error
	return errors.As(err, &e) && e.Code == uint32(libvirt.ErrNoDomain)
}

func uuidString(u libvirt.UUID) string {
	b := u[:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func nowMs() int64 { return time.Now().UnixMilli() }

// redact drops the password of a URI's user info for error messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

func parseXMLMain() {
	b, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil {
		fail("config", err, 2)
	}
	var dom Domain
	dom.ID = -1
	if err := parseDomainXML(&dom, string(b)); err != nil {
		fail("xml", err, 2)
	}
	emit(map[string]any{"t": "parsed", "dom": dom})
}
