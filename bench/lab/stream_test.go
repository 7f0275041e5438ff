package lab

import (
	"io"
	"net/http"
)

// newStreamRequest is a POST whose body is sent as it is written.
func newStreamRequest(url string, body io.Reader) (*http.Request, error) {
	return http.NewRequest(http.MethodPost, url, body)
}
