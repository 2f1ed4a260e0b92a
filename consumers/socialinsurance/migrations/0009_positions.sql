-- Where each of the service's durable consumers had got to (sdk.Positions),
-- kept with the tasks: a consumer that disappears while the service is
-- stopped is created again from here instead of starting over from a
-- bootstrap or at new notifications, which would skip the deaths and
-- moves published meanwhile without a word.
CREATE TABLE positions (
	consumer       text PRIMARY KEY,
	stream_created timestamptz,
	ack_floor      bigint NOT NULL,
	filter         text NOT NULL
);
