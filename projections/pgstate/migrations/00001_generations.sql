-- The state projection lives in generations: tables state_g<N> and
-- checkpoints_g<N>, created by the code (pgstate.createGeneration) because a
-- rebuild adds them at run time. These two tables say which generations
-- exist and which one is live; the view "documents" always reads the live one.

-- +goose Up
CREATE TABLE projection_generations (
    projection text        NOT NULL,
    generation integer     NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, generation)
);
CREATE TABLE projection_live (
    projection text        PRIMARY KEY,
    generation integer     NOT NULL,
    promoted   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE projection_live;
DROP TABLE projection_generations;
