package deadletter

import (
	"testing"

	"github.com/dyplsq/dyplsq/dypls"
)

// A job the handler dead-lettered whose record could not be written is
// found by the sweep with its true code and reason, read back from the
// archived task's last error.
func TestDeathReadBack(t *testing.T) {
	for _, c := range []struct {
		reason string
		err    *dypls.Error
		code   string
	}{
		{ReasonPermanent, &dypls.Error{Action: "UpdateSubscription", Code: "isv.BIND_CONFLICT", Message: "B 139****3333: bound", RequestID: "R1", HTTPStatus: 200}, "isv.BIND_CONFLICT"},
		{ReasonAttempts, &dypls.Error{Action: "UpdateSubscription", Code: "HTTP.502", Message: "<html>bad gateway</html>", HTTPStatus: 502}, "HTTP.502"},
		{ReasonMalformed, &dypls.Error{Code: "Job.Malformed", Message: "malformed payload: not JSON"}, "Job.Malformed"},
		{ReasonMaxAge, &dypls.Error{Code: "Job.MaxAgePassed"}, "Job.MaxAgePassed"},
	} {
		code, reason, ok := parseDeath(Death(c.reason, c.err).Error())
		if !ok || code != c.code || reason != c.reason {
			t.Errorf("%v: read back %q %q %v", c.err, code, reason, ok)
		}
	}
	if _, _, ok := parseDeath("transient: dypls: UpdateSubscription: HTTP.502"); ok {
		t.Error("a retry error read as a death")
	}
}
