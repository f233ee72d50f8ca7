-- Market Sentiment Tracker: DuckDB schema (DESIGN section 4).
-- Applied idempotently at every start by sentiment/io/store.py. All times are UTC TIMESTAMP.
-- Primary keys make every write an idempotent upsert.

CREATE TABLE IF NOT EXISTS candles (
    symbol      VARCHAR   NOT NULL,
    interval    VARCHAR   NOT NULL,  -- Bybit kline code: "60", "240", "D"
    open_time   TIMESTAMP NOT NULL,
    open        DOUBLE    NOT NULL,
    high        DOUBLE    NOT NULL,
    low         DOUBLE    NOT NULL,
    close       DOUBLE    NOT NULL,
    volume      DOUBLE    NOT NULL,  -- base coin
    turnover    DOUBLE    NOT NULL,  -- quote coin
    PRIMARY KEY (symbol, interval, open_time)
);

CREATE TABLE IF NOT EXISTS funding_rates (
    symbol       VARCHAR   NOT NULL,
    funding_time TIMESTAMP NOT NULL,  -- settlement time
    funding_rate DOUBLE    NOT NULL,  -- fraction per settlement (0.0001 = 0.01 %)
    PRIMARY KEY (symbol, funding_time)
);

CREATE TABLE IF NOT EXISTS open_interest (
    symbol        VARCHAR   NOT NULL,
    interval      VARCHAR   NOT NULL,  -- Bybit intervalTime: "5min" ... "1d"
    ts            TIMESTAMP NOT NULL,
    open_interest DOUBLE    NOT NULL,  -- base coin
    PRIMARY KEY (symbol, interval, ts)
);

CREATE TABLE IF NOT EXISTS long_short_ratio (
    symbol     VARCHAR   NOT NULL,
    period     VARCHAR   NOT NULL,  -- Bybit period: "5min" ... "1d"
    ts         TIMESTAMP NOT NULL,
    buy_ratio  DOUBLE    NOT NULL,  -- share of accounts net long, 0..1
    sell_ratio DOUBLE    NOT NULL,
    PRIMARY KEY (symbol, period, ts)
);

CREATE TABLE IF NOT EXISTS fear_greed (
    ts             TIMESTAMP NOT NULL,  -- the day (00:00 UTC)
    value          DOUBLE    NOT NULL,  -- 0..100
    classification VARCHAR   NOT NULL,
    PRIMARY KEY (ts)
);

CREATE TABLE IF NOT EXISTS tickers (
    symbol              VARCHAR   NOT NULL,
    ts                  TIMESTAMP NOT NULL,
    last_price          DOUBLE,
    mark_price          DOUBLE,
    index_price         DOUBLE,
    prev_price_24h      DOUBLE,
    price_24h_pcnt      DOUBLE,
    high_price_24h      DOUBLE,
    low_price_24h       DOUBLE,
    prev_price_1h       DOUBLE,
    open_interest       DOUBLE,
    open_interest_value DOUBLE,
    turnover_24h        DOUBLE,
    volume_24h          DOUBLE,
    funding_rate        DOUBLE,  -- predicted rate: never used as a settled rate
    next_funding_time   TIMESTAMP,
    bid1_price          DOUBLE,
    bid1_size           DOUBLE,
    ask1_price          DOUBLE,
    ask1_size           DOUBLE,
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS liquidations (
    symbol   VARCHAR   NOT NULL,
    ts       TIMESTAMP NOT NULL,
    side     VARCHAR   NOT NULL,  -- Bybit's side of the liquidated position's order
    price    DOUBLE    NOT NULL,
    size     DOUBLE    NOT NULL,
    seq      BIGINT,              -- message sequence number, for ordering within a ts
    PRIMARY KEY (symbol, ts, side, price, size)
);

-- How far the live stream (`sentiment stream`) got: every message it received stamped at or
-- before `through` (exchange time) is in the tables above. Bars that close after it are
-- provisional for the live job while the stream runs.
CREATE TABLE IF NOT EXISTS stream_state (
    symbol     VARCHAR   NOT NULL,
    through    TIMESTAMP NOT NULL,
    loaded_at  TIMESTAMP NOT NULL,  -- this machine's clock when it was loaded
    PRIMARY KEY (symbol)
);

CREATE TABLE IF NOT EXISTS orderbook_imbalance (
    symbol  VARCHAR   NOT NULL,
    ts      TIMESTAMP NOT NULL,
    obi     DOUBLE    NOT NULL,  -- -1 (all asks) .. +1 (all bids), top 5 levels weighted
    PRIMARY KEY (symbol, ts)
);

CREATE TABLE IF NOT EXISTS sentiment_history (
    symbol                  VARCHAR   NOT NULL,
    interval                VARCHAR   NOT NULL,
    timestamp               TIMESTAMP NOT NULL,  -- the bar's close: when it became knowable
    close                   DOUBLE,
    sentiment_score         DOUBLE,
    confidence              DOUBLE,
    regime                  VARCHAR,
    regime_duration_bars    INTEGER,
    regime_confidence       DOUBLE,
    trend_score             DOUBLE,
    momentum_score          DOUBLE,
    volatility_score        DOUBLE,
    volume_flow_score       DOUBLE,
    exchange_sentiment      DOUBLE,
    macro_sentiment         DOUBLE,
    funding_rate            DOUBLE,
    open_interest           DOUBLE,
    open_interest_delta_pct DOUBLE,
    long_short_ratio        DOUBLE,
    liquidation_intensity   DOUBLE,
    order_book_imbalance    DOUBLE,
    fear_greed_index        DOUBLE,
    hmm_regime              VARCHAR,
    hmm_probability         DOUBLE,
    hmm_model_id            VARCHAR,
    hmm_state_probabilities VARCHAR,  -- JSON: {label: probability}
    PRIMARY KEY (symbol, interval, timestamp)
);

CREATE TABLE IF NOT EXISTS regime_transitions (
    symbol      VARCHAR   NOT NULL,
    interval    VARCHAR   NOT NULL,
    timestamp   TIMESTAMP NOT NULL,
    from_regime VARCHAR,
    to_regime   VARCHAR   NOT NULL,
    PRIMARY KEY (symbol, interval, timestamp)
);

CREATE TABLE IF NOT EXISTS hmm_models (
    model_id    VARCHAR   NOT NULL,
    symbol      VARCHAR   NOT NULL,
    interval    VARCHAR   NOT NULL,
    trained_at  TIMESTAMP NOT NULL,  -- wall clock, metadata only
    train_start TIMESTAMP NOT NULL,
    train_end   TIMESTAMP NOT NULL,
    n_states    INTEGER   NOT NULL,
    bic         DOUBLE,
    log_likelihood DOUBLE,
    params      VARCHAR   NOT NULL,  -- JSON parameters (never pickle)
    labels      VARCHAR   NOT NULL,  -- JSON list: one label per state
    PRIMARY KEY (model_id)
);

CREATE TABLE IF NOT EXISTS tracker_state (
    symbol         VARCHAR   NOT NULL,
    interval       VARCHAR   NOT NULL,
    last_timestamp TIMESTAMP NOT NULL,
    state          VARCHAR   NOT NULL,  -- JSON checkpoint of the live tracker
    PRIMARY KEY (symbol, interval)
);
