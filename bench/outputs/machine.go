package outputs

import (
	"os"
	"strings"
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
