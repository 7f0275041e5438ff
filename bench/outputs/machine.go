package outputs

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CPUModel is /proc/cpuinfo's first "model name" ("" when unreadable), for the machine line of a
// result file.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Product is the DMI system vendor and product name ("QEMU Standard PC ..." on a KVM guest), when
// readable.
func Product() string {
	p := ""
	for _, f := range []string{"/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name"} {
		if b, err := os.ReadFile(f); err == nil {
			p = strings.TrimSpace(p + " " + strings.TrimSpace(string(b)))
		}
	}
	return p
}

// Machine describes where a bench command ran, for its results.json.
type Machine struct {
	// Kernel is `uname -r`; KernelVersion is uname's version string.
	Kernel        string `json:"kernel"`
	KernelVersion string `json:"kernelVersion,omitempty"`
	// CPUModel is /proc/cpuinfo's model name; CPUs the number of online cores.
	CPUModel string `json:"cpuModel,omitempty"`
	CPUs     int    `json:"cpus"`
	// Product is the DMI vendor and product name, when readable (e.g. a hypervisor).
	Product string `json:"product,omitempty"`
	// GoVersion is the Go toolchain that built the benchmark.
	GoVersion string `json:"goVersion"`
	// Commit is `git rev-parse HEAD` of the working folder, when available.
	Commit string `json:"commit,omitempty"`
	// Nice is the benchmark's scheduling niceness (the processes it starts inherit it).
	Nice int `json:"nice"`
}

// DescribeMachine records the kernel (uname), cores, CPU model, product, Go version, niceness and the git
// commit of the working folder.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), CPUModel: CPUModel(), Product: Product()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
		m.KernelVersion = unix.ByteSliceToString(u.Version[:])
	}
	if prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		m.Nice = 20 - prio // the raw syscall returns 20 - nice
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}
