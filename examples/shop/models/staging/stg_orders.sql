{#- One row per order, with its amount; reads the generated view of orders.csv. -#}
select
    order_id,
    customer_id,
    region,
    product,
    quantity,
    unit_price,
    {{ money('quantity * unit_price') }} as amount,
    cast(ordered_at as date) as order_date
from {{ ref('stg_uploads__orders') }}
