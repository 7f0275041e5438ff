package compare

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat times (100 on every Linux ABI Go supports).
const clockTicks = 100

// cpuBusyTicks is the non-idle time of one core from /proc/stat (user, nice, system, irq, softirq, steal).
func cpuBusyTicks(cpu int) (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseCPUBusy(b, cpu)
}

func parseCPUBusy(stat []byte, cpu int) (uint64, error) {
	want := "cpu" + strconv.Itoa(cpu)
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != want {
			continue
		}
		var busy uint64
		for i, v := range f[1:9] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %s field %d: %w", want, i+1, err)
			}
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			busy += n
		}
		return busy, nil
	}
	return 0, fmt.Errorf("/proc/stat: no line for %s", want)
}

// taskTicks is utime+stime of a process (all its threads) or of one thread, from /proc/ID/stat.
func taskTicks(id int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", id))
	if err != nil {
		return 0, err
	}
	return parseTaskTicks(b)
}

func parseTaskTicks(stat []byte) (uint64, error) {
	// The command may contain spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command field")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command", len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return u + s, nil
}

// napiThreads lists the kernel threads named napi/<iface>-<id> for the given interface names. NAPI threads live
// in the root PID namespace and carry only the interface name, so threads of other labs' interfaces with the
// same names are excluded by the caller's baseline (threads that existed before this lab made its own).
func napiThreads(ifaces []string, exclude map[int]bool) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/comm")
	var out []int
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		for _, ifc := range ifaces {
			if strings.HasPrefix(comm, "napi/"+ifc+"-") {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				if !exclude[pid] {
					out = append(out, pid)
				}
			}
		}
	}
	return out
}

// pinTask sets the CPU affinity of a thread or process (0: the calling thread) to one core.
func pinTask(tid, cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(tid, &set); err != nil {
		return fmt.Errorf("pin task %d to cpu %d: %w", tid, cpu, err)
	}
	return nil
}
