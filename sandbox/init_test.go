package sandbox

import (
	"context"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

func TestCheckStage(t *testing.T) {
	assert.NilError(t, checkStage(false, true))
	assert.Check(t, is.ErrorContains(checkStage(true, true), "did not take over; fix: build with CGO_ENABLED=1"))
	assert.Check(t, is.ErrorContains(checkStage(false, false), "constructor did not run"))
	// This test binary links the stage: its constructor ran.
	assert.Check(t, stage.Linked())
}

func TestStartNeedsInit(t *testing.T) {
	was := initChecked.Load()
	initChecked.Store(false)
	defer initChecked.Store(was)
	_, err := Start(context.Background(), &Spec{})
	assert.Equal(t, err, errNoInit)
}
