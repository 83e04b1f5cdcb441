// Command vcsim-driver acts on a running simulator (infra/vcsim) the way an administrator
// would, through govmomi's client packages: tests and benchmarks call it to make things happen
// that a connector must then report.
//
//	vcsim-driver COMMAND [ARGS]   (connection from VCSIM_URL, VCSIM_CA, VCSIM_USERNAME, VCSIM_PASSWORD)
//
//	list                        JSON array of VMs: instanceUuid, name, moref, host, hostName, power, template
//	hosts                       JSON array of hosts: moref, name, cluster, connection, maintenance
//	power-on VM | power-off VM | suspend VM
//	migrate VM HOST             relocate to HOST (name or MoRef value)
//	clone VM NEWNAME            prints the new VM as JSON (instanceUuid, moref, host)
//	snapshot VM NAME
//	revert VM [NAME]            to the named snapshot, or to the current one
//	destroy VM                  (power it off first)
//	set-ip VM IP                the guest's first NIC reports IP (vcsim: extraConfig SET.guest.ipAddress)
//	terminate-sessions          ends every session but this one (a session expiry for everyone else)
//	power-cycle-all [WORKERS]   powers every powered-on VM off and on again; prints counts and seconds
//	retrieve-view               times one RetrievePropertiesEx (+ continuations) of every VM and host
//	                            through a container view, with the connector's property set
//
// VM is a name, an instanceUuid or a MoRef value. Every command prints one JSON line on success
// and exits non-zero with a message on stderr on failure.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// The connector's VM and host property sets (packages/vsphere/src/collect.ts), for retrieve-view.
var vmProps = []string{
	"name", "config.instanceUuid", "config.template", "config.guestFullName", "config.hardware.device",
	"runtime.powerState", "runtime.host", "guest.guestId", "guest.guestFullName", "guest.net", "snapshot",
}
var hostProps = []string{"name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode"}

type driver struct {
	ctx context.Context
	c   *vim25.Client
	sm  *session.Manager
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: vcsim-driver COMMAND [ARGS] (see the comment at the top of main.go)")
	}
	ctx := context.Background()
	d, err := connect(ctx)
	if err != nil {
		fail("connecting: %v", err)
	}
	defer func() { _ = d.sm.Logout(ctx) }()

	out, err := d.run(os.Args[1], os.Args[2:])
	if err != nil {
		_ = d.sm.Logout(ctx)
		fail("%s: %v", os.Args[1], err)
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func connect(ctx context.Context) (*driver, error) {
	raw := os.Getenv("VCSIM_URL")
	if raw == "" {
		return nil, fmt.Errorf("VCSIM_URL is not set (source the lines infra/vcsim/start.sh prints)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	sc := soap.NewClient(u, false)
	if ca := os.Getenv("VCSIM_CA"); ca != "" {
		if err := sc.SetRootCAs(ca); err != nil {
			return nil, err
		}
	}
	c, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	sm := session.NewManager(c)
	if err := sm.Login(ctx, url.UserPassword(os.Getenv("VCSIM_USERNAME"), os.Getenv("VCSIM_PASSWORD"))); err != nil {
		return nil, err
	}
	return &driver{ctx: ctx, c: c, sm: sm}, nil
}

func (d *driver) run(cmd string, args []string) (any, error) {
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("needs %d argument(s)", n)
		}
		return nil
	}
	switch cmd {
	case "list":
		return d.list()
	case "hosts":
		return d.hosts()
	case "power-on", "power-off", "suspend", "destroy":
		if err := need(1); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		var task *object.Task
		switch cmd {
		case "power-on":
			task, err = vm.PowerOn(d.ctx)
		case "power-off":
			task, err = vm.PowerOff(d.ctx)
		case "suspend":
			task, err = vm.Suspend(d.ctx)
		case "destroy":
			task, err = vm.Destroy(d.ctx)
		}
		return d.wait(task, err, map[string]any{"vm": vm.Reference().Value})
	case "migrate":
		if err := need(2); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		host, err := d.findHost(args[1])
		if err != nil {
			return nil, err
		}
		var before mo.VirtualMachine
		if err := vm.Properties(d.ctx, vm.Reference(), []string{"runtime.host"}, &before); err != nil {
			return nil, err
		}
		ref := host.Reference()
		task, err := vm.Relocate(d.ctx, types.VirtualMachineRelocateSpec{Host: &ref}, types.VirtualMachineMovePriorityDefaultPriority)
		return d.wait(task, err, map[string]any{"vm": vm.Reference().Value, "from": before.Runtime.Host.Value, "to": ref.Value})
	case "clone":
		if err := need(2); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		var src mo.VirtualMachine
		if err := vm.Properties(d.ctx, vm.Reference(), []string{"parent"}, &src); err != nil {
			return nil, err
		}
		folder := object.NewFolder(d.c, *src.Parent)
		task, err := vm.Clone(d.ctx, folder, args[1], types.VirtualMachineCloneSpec{})
		if err != nil {
			return nil, err
		}
		info, err := task.WaitForResult(d.ctx, nil)
		if err != nil {
			return nil, err
		}
		ref := info.Result.(types.ManagedObjectReference)
		var clone mo.VirtualMachine
		if err := property.DefaultCollector(d.c).RetrieveOne(d.ctx, ref, []string{"config.instanceUuid", "runtime.host", "name"}, &clone); err != nil {
			return nil, err
		}
		return map[string]any{"instanceUuid": clone.Config.InstanceUuid, "moref": ref.Value, "name": clone.Name, "host": clone.Runtime.Host.Value, "task": info.Key}, nil
	case "snapshot":
		if err := need(2); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		task, err := vm.CreateSnapshot(d.ctx, args[1], "", false, false)
		return d.wait(task, err, map[string]any{"vm": vm.Reference().Value, "snapshot": args[1]})
	case "revert":
		if err := need(1); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		var task *object.Task
		name := ""
		if len(args) > 1 {
			name = args[1]
			task, err = vm.RevertToSnapshot(d.ctx, name, true)
		} else {
			task, err = vm.RevertToCurrentSnapshot(d.ctx, true)
		}
		return d.wait(task, err, map[string]any{"vm": vm.Reference().Value, "snapshot": name})
	case "set-ip":
		if err := need(2); err != nil {
			return nil, err
		}
		vm, err := d.findVM(args[0])
		if err != nil {
			return nil, err
		}
		// vcsim copies extraConfig SET.guest.ipAddress into guest.net[0].ipAddress (no guest tools here).
		task, err := vm.Reconfigure(d.ctx, types.VirtualMachineConfigSpec{ExtraConfig: []types.BaseOptionValue{
			&types.OptionValue{Key: "SET.guest.ipAddress", Value: args[1]},
		}})
		return d.wait(task, err, map[string]any{"vm": vm.Reference().Value, "ip": args[1]})
	case "terminate-sessions":
		return d.terminateSessions()
	case "power-cycle-all":
		workers := 4
		if len(args) > 0 {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("WORKERS must be a positive integer")
			}
			workers = n
		}
		return d.powerCycleAll(workers)
	case "retrieve-view":
		return d.retrieveView()
	}
	return nil, fmt.Errorf("unknown command (see the comment at the top of main.go)")
}

func (d *driver) wait(task *object.Task, err error, out map[string]any) (any, error) {
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(d.ctx, nil)
	if err != nil {
		return nil, err
	}
	out["task"] = info.Key
	return out, nil
}

func (d *driver) allVMs(props []string) ([]mo.VirtualMachine, error) {
	m := view.NewManager(d.c)
	v, err := m.CreateContainerView(d.ctx, d.c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(d.ctx) }()
	var vms []mo.VirtualMachine
	err = v.Retrieve(d.ctx, []string{"VirtualMachine"}, props, &vms)
	return vms, err
}

func (d *driver) allHosts() ([]mo.HostSystem, error) {
	m := view.NewManager(d.c)
	v, err := m.CreateContainerView(d.ctx, d.c.ServiceContent.RootFolder, []string{"HostSystem"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(d.ctx) }()
	var hosts []mo.HostSystem
	err = v.Retrieve(d.ctx, []string{"HostSystem"}, hostProps, &hosts)
	return hosts, err
}

func (d *driver) findVM(key string) (*object.VirtualMachine, error) {
	vms, err := d.allVMs([]string{"name", "config.instanceUuid"})
	if err != nil {
		return nil, err
	}
	for _, vm := range vms {
		if vm.Name == key || vm.Self.Value == key || (vm.Config != nil && vm.Config.InstanceUuid == key) {
			return object.NewVirtualMachine(d.c, vm.Self), nil
		}
	}
	return nil, fmt.Errorf("no VM named %q (nor with that instanceUuid or MoRef)", key)
}

func (d *driver) findHost(key string) (*object.HostSystem, error) {
	hosts, err := d.allHosts()
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if h.Name == key || h.Self.Value == key {
			return object.NewHostSystem(d.c, h.Self), nil
		}
	}
	return nil, fmt.Errorf("no host named %q (nor with that MoRef)", key)
}

type vmRow struct {
	InstanceUUID string `json:"instanceUuid"`
	Name         string `json:"name"`
	MoRef        string `json:"moref"`
	Host         string `json:"host"`
	HostName     string `json:"hostName"`
	Power        string `json:"power"`
	Template     bool   `json:"template"`
}

func (d *driver) list() (any, error) {
	vms, err := d.allVMs([]string{"name", "config.instanceUuid", "config.template", "runtime.host", "runtime.powerState"})
	if err != nil {
		return nil, err
	}
	hosts, err := d.allHosts()
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, h := range hosts {
		names[h.Self.Value] = h.Name
	}
	rows := []vmRow{}
	for _, vm := range vms {
		r := vmRow{Name: vm.Name, MoRef: vm.Self.Value, Power: string(vm.Runtime.PowerState)}
		if vm.Config != nil {
			r.InstanceUUID = vm.Config.InstanceUuid
			r.Template = vm.Config.Template
		}
		if vm.Runtime.Host != nil {
			r.Host = vm.Runtime.Host.Value
			r.HostName = names[r.Host]
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (d *driver) hosts() (any, error) {
	hosts, err := d.allHosts()
	if err != nil {
		return nil, err
	}
	type row struct {
		MoRef       string `json:"moref"`
		Name        string `json:"name"`
		Parent      string `json:"parent"`
		ParentType  string `json:"parentType"`
		Connection  string `json:"connection"`
		Maintenance bool   `json:"maintenance"`
	}
	rows := []row{}
	for _, h := range hosts {
		r := row{MoRef: h.Self.Value, Name: h.Name, Connection: string(h.Runtime.ConnectionState), Maintenance: h.Runtime.InMaintenanceMode}
		if h.Parent != nil {
			r.Parent, r.ParentType = h.Parent.Value, h.Parent.Type
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func (d *driver) terminateSessions() (any, error) {
	var sm mo.SessionManager
	pc := property.DefaultCollector(d.c)
	if err := pc.RetrieveOne(d.ctx, *d.c.ServiceContent.SessionManager, []string{"sessionList", "currentSession"}, &sm); err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range sm.SessionList {
		if sm.CurrentSession == nil || s.Key != sm.CurrentSession.Key {
			ids = append(ids, s.Key)
		}
	}
	if len(ids) > 0 {
		if err := d.sm.TerminateSession(d.ctx, ids); err != nil {
			return nil, err
		}
	}
	return map[string]any{"terminated": len(ids)}, nil
}

func (d *driver) powerCycleAll(workers int) (any, error) {
	vms, err := d.allVMs([]string{"name", "runtime.powerState", "config.template"})
	if err != nil {
		return nil, err
	}
	var todo []types.ManagedObjectReference
	for _, vm := range vms {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && (vm.Config == nil || !vm.Config.Template) {
			todo = append(todo, vm.Self)
		}
	}
	start := time.Now()
	jobs := make(chan types.ManagedObjectReference)
	var ops, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range jobs {
				vm := object.NewVirtualMachine(d.c, ref)
				for _, op := range []func(context.Context) (*object.Task, error){vm.PowerOff, vm.PowerOn} {
					task, err := op(d.ctx)
					if err == nil {
						err = task.Wait(d.ctx)
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						break
					}
					ops.Add(1)
				}
			}
		}()
	}
	for _, ref := range todo {
		jobs <- ref
	}
	close(jobs)
	wg.Wait()
	out := map[string]any{"vms": len(todo), "ops": ops.Load(), "failed": failed.Load(), "seconds": time.Since(start).Seconds()}
	if e := firstErr.Load(); e != nil {
		out["firstError"] = e
	}
	return out, nil
}

func (d *driver) retrieveView() (any, error) {
	m := view.NewManager(d.c)
	v, err := m.CreateContainerView(d.ctx, d.c.ServiceContent.RootFolder, []string{"VirtualMachine", "HostSystem"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(d.ctx) }()
	spec := types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{
			Obj:  v.Reference(),
			Skip: types.NewBool(true),
			SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{
				Type: "ContainerView", Path: "view",
			}},
		}},
		PropSet: []types.PropertySpec{{Type: "VirtualMachine", PathSet: vmProps}, {Type: "HostSystem", PathSet: hostProps}},
	}
	pc := d.c.ServiceContent.PropertyCollector
	start := time.Now()
	res, err := methods.RetrievePropertiesEx(d.ctx, d.c, &types.RetrievePropertiesEx{This: pc, SpecSet: []types.PropertyFilterSpec{spec}})
	if err != nil {
		return nil, err
	}
	n, calls := 0, 1
	token := ""
	if res.Returnval != nil {
		n, token = len(res.Returnval.Objects), res.Returnval.Token
	}
	for token != "" {
		more, err := methods.ContinueRetrievePropertiesEx(d.ctx, d.c, &types.ContinueRetrievePropertiesEx{This: pc, Token: token})
		if err != nil {
			return nil, err
		}
		calls++
		n += len(more.Returnval.Objects)
		token = more.Returnval.Token
	}
	return map[string]any{"ms": float64(time.Since(start).Microseconds()) / 1000, "objects": n, "calls": calls}, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vcsim-driver: "+format+"\n", args...)
	os.Exit(1)
}
