// A pool worker entry that cannot start.
throw new Error('this worker cannot start');
