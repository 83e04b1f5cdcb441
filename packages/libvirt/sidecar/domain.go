package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Domain is what the sidecar reports for one libvirt domain. Field names are the wire
// protocol (see ../src/protocol.ts); the TypeScript side validates every one of them.
type Domain struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	ID         int32  `json:"id"`     // runtime id while active, -1 when inactive
	State      int32  `json:"state"`  // virDomainState
	Reason     int32  `json:"reason"` // the state's reason code
	Persistent bool   `json:"persistent"`
	OsID       string `json:"osId,omitempty"` // libosinfo id from <metadata>, if any
	Nics       []Nic  `json:"nics"`
	Snapshot   string `json:"snapshot,omitempty"` // the current snapshot's name, if any
}

// Nic is one <interface> of a domain, with the addresses libvirt knows for its MAC.
type Nic struct {
	MAC     string   `json:"mac"`
	Type    string   `json:"type"`
	Network string   `json:"network,omitempty"`
	IPs     []string `json:"ips"`
}

const libosinfoNS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"

// The parts of a domain's XML the sidecar reads. encoding/xml ignores everything else.
type domainXML struct {
	XMLName  xml.Name `xml:"domain"`
	Name     string   `xml:"name"`
	UUID     string   `xml:"uuid"`
	Metadata struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"metadata"`
	Interfaces []struct {
		Type string `xml:"type,attr"`
		MAC  struct {
			Address string `xml:"address,attr"`
		} `xml:"mac"`
		Source struct {
			Network string `xml:"network,attr"`
			Bridge  string `xml:"bridge,attr"`
			Dev     string `xml:"dev,attr"`
		} `xml:"source"`
	} `xml:"devices>interface"`
}

// parseDomainXML fills the XML-derived fields of d (OS id, NICs) from a domain's XML.
func parseDomainXML(d *Domain, doc string) error {
	var x domainXML
	if err := xml.Unmarshal([]byte(doc), &x); err != nil {
		return fmt.Errorf("domain XML does not parse: %w", err)
	}
	if d.Name == "" {
		d.Name = x.Name
	}
	if d.UUID == "" {
		d.UUID = strings.ToLower(x.UUID)
	}
	d.OsID = osIDFromMetadata(x.Metadata.Inner)
	d.Nics = []Nic{}
	for _, i := range x.Interfaces {
		n := Nic{MAC: strings.ToLower(i.MAC.Address), Type: i.Type, IPs: []string{}}
		switch i.Type {
		case "network":
			n.Network = i.Source.Network
		case "bridge":
			n.Network = i.Source.Bridge
		case "direct":
			n.Network = i.Source.Dev
		}
		d.Nics = append(d.Nics, n)
	}
	return nil
}

// osIDFromMetadata finds <libosinfo:os id="…"/> inside <metadata>, the element virt-install
// and virt-manager write; any other metadata is skipped.
func osIDFromMetadata(inner []byte) string {
	if len(inner) == 0 {
		return ""
	}
	dec := xml.NewDecoder(strings.NewReader("<m>" + string(inner) + "</m>"))
	for {
		tok, err := dec.Token()
		if err != nil {
			if err != io.EOF {
				return ""
			}
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Space == libosinfoNS && se.Name.Local == "os" {
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					return a.Value
				}
			}
		}
	}
}
