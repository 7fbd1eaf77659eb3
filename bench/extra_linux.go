package bench

import "context"

// startExtra starts the modes built on packages beyond the queue engine.
func startExtra(ctx context.Context, e *env, m Mode, num uint16) (handler, string, error) {
	return nil, "not implemented yet", nil
}

func (e *env) flood(ctx context.Context, m Mode, num uint16, h handler, progress func(string)) (Sample, error) {
	return Sample{}, nil
}
