{#- Rounds an amount to cents. -#}
{% macro money(expression) -%}
    round(cast({{ expression }} as decimal(18, 4)), 2)
{%- endmacro %}
