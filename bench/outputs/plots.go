package outputs

import (
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"time"
)

// Plot is one PNG file a command draws beside its results.
type Plot struct {
	// File is the PNG's name in the output folder; What names it in errors ("timeline plot").
	File, What string
	// Draw writes the plot to path.
	Draw func(path string) error
}

// draw draws every plot into dir, and returns the first error, naming the plot.
func draw(dir string, plots []Plot) error {
	for _, p := range plots {
		if err := p.Draw(filepath.Join(dir, p.File)); err != nil {
			return fmt.Errorf("%s: %w", p.What, err)
		}
	}
	return nil
}

// CheckPlot reports an error unless path is a PNG image of at least 100×100 pixels (for tests of
// the plots).
func CheckPlot(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		return fmt.Errorf("%s: %v is too small", path, b)
	}
	return nil
}

// Provenance is what every result file records about its run; a command's Result embeds it, so its
// fields sit at the top level of results.json.
type Provenance struct {
	// Command is the command line that made it.
	Command string `json:"command"`
	// Lab is the prefix of the namespace lab it ran in (gone when the run returns).
	Lab string `json:"lab"`
	// Machine is where it ran.
	Machine Machine `json:"machine"`
	// Started and Finished are the wall-clock times of the run.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}
