"""IM incentive stream processor: IM activity in Kafka in, point awards and badges out."""

__version__ = "0.1.0"
